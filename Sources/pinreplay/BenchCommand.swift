import ArgumentParser
import Bench
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// `pinreplay bench`: performance figures (docs/PERFORMANCE.md). Never pass/fail.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure replay speed, memory and decoding; build with -c release first.",
        discussion: "Each case runs in a process of its own; its wall time and peak RSS come from the kernel.")

    @Option(name: .customLong("case"), help: "Cases to run (default all): \(BenchCase.all.map(\.name).joined(separator: ", ")).")
    var cases: [String] = []
    @Option(help: "Runs per figure; medians are reported.") var runs = 3
    @Option(help: .hidden) var child: String?

    func run() throws {
        guard runs >= 1 else { throw UsageError("--runs must be at least 1") }
        if let child {
            try runBenchChild(child, runs: runs)
            return
        }
        var selected = BenchCase.all
        if !cases.isEmpty {
            selected = try cases.map { name in
                guard let c = BenchCase.all.first(where: { $0.name == name }) else {
                    throw UsageError("unknown case '\(name)'; cases: \(BenchCase.all.map(\.name).joined(separator: ", "))")
                }
                return c
            }
        }
        var exe = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &exe, exe.count - 1)
        guard n > 0 else { throw UsageError("cannot find my own executable") }
        let path = String(decoding: exe.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let results = try runBenchCases(selected, runs: runs, executable: path)
        for r in results {
            let c = BenchCase.all.first { $0.name == r.name }
            print("\(r.name): \(c?.what ?? "")")
            for (k, v) in r.figures { print("  \(k.padded(34)) \(v)") }
            print("  \("process wall".padded(34)) \(formatFixed(r.wallSeconds, 2)) s (\(runs) runs, generation included)")
            print("  \("process peak RSS".padded(34)) \(r.peakRSSKiB / 1024) MiB")
        }
    }
}

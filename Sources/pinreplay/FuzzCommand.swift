import ArgumentParser
import Foundation
import Reduce
import TraceFormat

/// `pinreplay fuzz --engines A,B --seed S --count N`: search for traces where engines differ.
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Replay random traces through engines; reduce and keep what they find.",
        discussion: """
            Trace i depends only on the seed and i (swarm testing: each draws a random subset of \
            features). Each kind of difference a trace shows (a divergence kind, a violation on some \
            engines only) is reduced the first time it is seen (as reduce --keep KIND) and written \
            to --out as a text reproducer whose header names the seed, the index and the kind. Exit 0 when nothing was found, 1 when something was, 2 bad usage.
            """)

    @Option(help: "Engines to compare, comma separated (names, aliases, 'later', a C file, or 'all').")
    var engines: String

    @Option(help: "The seed every trace is drawn from.")
    var seed: UInt64

    @Option(help: "How many traces to try.")
    var count: UInt64?

    @Option(help: "How long to try, in seconds (the traces tried then depend on the machine).")
    var time: Double?

    @Option(help: "Where to write reproducers (created if missing).")
    var out: String?

    @Option(help: "Candidates replayed at once while reducing (default: all cores).")
    var jobs: Int?

    @OptionGroup var isolation: IsolationOptions

    func run() throws {
        let selected = try ReplayCommand.selectEngines(engines, isolation: isolation)
        guard (count == nil) != (time == nil) else { throw UsageError("give exactly one of --count N and --time SECONDS") }
        if let time, !(time > 0) { throw UsageError("--time must be positive") }
        let jobs = jobs ?? ProcessInfo.processInfo.activeProcessorCount
        guard jobs >= 1 else { throw UsageError("--jobs must be at least 1") }
        let fuzzer = Fuzzer(engines: selected, seed: seed, jobs: jobs)

        let clock = ContinuousClock()
        let deadline = time.map { clock.now + .milliseconds(Int64($0 * 1000)) }
        var found: [Fuzzer.Found] = []
        var index: UInt64 = 0
        while count.map({ index < $0 }) ?? (clock.now < deadline!) {
            fuzzer.run(index: index, into: &found)
            index += 1
        }

        if let out {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for f in found {
                let file = try AtomicOutput(path: out + "/" + fuzzer.fileName(f))
                try file.write(Array(fuzzer.render(f).utf8))
                try file.commit()
            }
        }
        print("\(index) traces, seed \(seed), engines \(selected.map(\.name).joined(separator: ",")): \(found.count) kinds found")
        if !found.isEmpty {
            // As wide as the longest kind: engine names (a C file's stem) can be long.
            let width = max(34, (found.map(\.finding.description.count).max() ?? 0) + 2)
            print("kind".padded(width) + "traces".padded(8) + "reproducer")
            for f in found {
                let where_ = out.map { $0 + "/" + fuzzer.fileName(f) } ?? "index \(f.index), \(f.reproducer.count) statements"
                print(f.finding.description.padded(width) + "\(f.count)".padded(8) + where_)
            }
            throw ExitCode(1)
        }
    }
}

import ArgumentParser
import Foundation
import Record
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// `pinreplay record`: a trace from a live process's memory map, or from saved files.
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record a process's memory map (and pagemap) as the starting snapshot of a trace.",
        discussion: """
            --pid reads /proc/PID/maps, /proc/PID/pagemap (pfns are visible to root only) and \
            /proc/PID/limits. --maps and --pagemap read saved copies. Every assumption made is \
            written into the trace as a mark and printed once.
            """)

    @Option(help: "A live process to record.") var pid: Int32?
    @Option(help: "A saved /proc/PID/maps.") var maps: String?
    @Option(help: "A saved /proc/PID/pagemap (or the live one).") var pagemap: String?
    @Option(help: "Huge page size of hugetlbfs mappings.") var hugetlbSize: String = "2M"
    @Option(help: "Seed for pfns laid out when the kernel hides them.") var seed: UInt64 = 1
    @Option(name: .shortAndLong, help: "Output trace (binary unless .txt or --text); - for stdout.") var output: String = "recorded.vptr"
    @Flag(help: "Write the text form.") var text = false

    func run() throws {
        guard (pid == nil) != (maps == nil) else { throw UsageError("give either --pid PID or --maps FILE") }
        let mapsPath = maps ?? "/proc/\(pid ?? 0)/maps"
        let pagemapPath = pagemap ?? pid.map { "/proc/\($0)/pagemap" }
        var recorder = Recorder()
        recorder.seed = seed
        guard let huge = parseTraceNumber(hugetlbSize), huge >= 4096, huge & (huge - 1) == 0 else {
            throw UsageError("--hugetlb-size must be a power of two of at least 4K, not '\(hugetlbSize)'")
        }
        recorder.hugetlbSize = huge
        let entries = try parseMaps(try Self.readText(mapsPath), file: mapsPath)
        var fd: Int32?
        if let pagemapPath {
            let f = open(pagemapPath, O_RDONLY | O_CLOEXEC)
            guard f >= 0 else {
                throw TraceError(file: pagemapPath, .file, "cannot open: \(String(cString: strerror(errno)))")
            }
            fd = f
        }
        defer { if let fd { close(fd) } }
        let memlock = pid.flatMap { (try? Self.readText("/proc/\($0)/limits")).flatMap(memlockLimit) }
        let statements = recorder.snapshot(maps: entries, pagemapFD: fd, memlock: memlock ?? nil)
        for a in recorder.assumptions { printError("pinreplay record: assumed: \(a)") }
        let form: TraceForm = text || output.hasSuffix(".txt") ? .text : .binary
        let writer = try TraceWriter(path: output, form: form)
        for s in statements { try writer.write(s) }
        try writer.finish()
    }

    /// A whole text file, /proc files included (they report a size of 0).
    static func readText(_ path: String) throws(TraceError) -> String {
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw TraceError(file: path, .file, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { try? h.close() }
        let data = (try? h.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

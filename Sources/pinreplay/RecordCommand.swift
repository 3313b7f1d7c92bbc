import ArgumentParser
import Foundation
import Record
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// `pinreplay record`: a trace from a live process (and its QEMU monitor), or from saved files.
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record a process's memory map, and QEMU's map requests, as a trace.",
        discussion: """
            --pid reads /proc/PID/maps, /proc/PID/pagemap (pfns are visible to root only) and \
            /proc/PID/limits; --maps and --pagemap read saved copies. With --qemu-monitor (a QMP \
            socket of QEMU process --pid), or --mtree and --hva (saved 'info mtree -f' and \
            'gpa2hva' output), the map requests QEMU's VFIO listener issues for its flat view \
            follow the snapshot; with --qemu-trace, those its trace log shows; with --bpftrace, \
            those tools/capture/vfio-dma.bt saw. Every assumption is written into the trace as a \
            mark and printed once.
            """)

    @Option(help: "A live process to record.") var pid: Int32?
    @Option(help: "A saved /proc/PID/maps; several, in time order, record how the process changed between them.") var maps: [String] = []
    @Option(help: "A saved /proc/PID/pagemap (or the live one); several pair with --maps by position.") var pagemap: [String] = []
    @Option(
        help:
            "A saved /proc/kpageflags (with --pid: the live one, when readable) to tell the zero page, reserved frames and frames without struct page from ram."
    )
    var kpageflags: String?
    @Option(help: "QMP socket of the QEMU process given by --pid.") var qemuMonitor: String?
    @Option(
        help:
            "With --qemu-monitor: keep watching this many seconds; each change of QEMU's memory map or flat view becomes vma/munmap statements and the listener's unmaps and maps."
    ) var watch: Double?
    @Option(help: "Seconds between two looks while watching.") var interval: Double = 0.1
    @Flag(help: "With --watch: resume a QEMU started paused (-S) after the first snapshot.") var resume = false
    @Option(help: "Saved 'info mtree -f' output.") var mtree: String?
    @Option(help: "Saved 'gpa2hva' output, one answer per line, for the sections of --mtree.") var hva: String?
    @Option(
        help: "A QEMU trace log (-trace 'vfio_*') of the VFIO listener's requests, as pasted; alone, the address space is inferred from it."
    ) var qemuTrace: String?
    @Option(help: "The host's lspci -vv output: where the BARs of the log's vfio_region_mmap lines live (with --qemu-trace alone).")
    var lspci: String?
    @Option(help: "The guest's lspci -vv output: where the guest sees those BARs (with --qemu-trace alone).")
    var guestLspci: String?
    @Option(help: "A BAR's host address, and its guest address after @: BDF:N=HOST[@GUEST], hex (with --qemu-trace alone).")
    var bar: [String] = []
    @Option(help: "Output of tools/capture/vfio-dma.bt: the requests as the host's kernel saw them.") var bpftrace: String?
    @Option(help: "Huge page size of hugetlbfs mappings.") var hugetlbSize: String = "2M"
    @Option(help: "Seed for pfns laid out when the kernel hides them.") var seed: UInt64 = 1
    @Option(name: .shortAndLong, help: "Output trace (binary unless .txt or --text); - for stdout.") var output: String = "recorded.vptr"
    @Flag(help: "Write the text form.") var text = false

    func run() throws {
        // A trace log alone is enough: the address space is inferred from it.
        guard (pid == nil) != maps.isEmpty || (pid == nil && qemuTrace != nil) else {
            throw UsageError("give either --pid PID or --maps FILE (or a --qemu-trace log alone)")
        }
        guard pagemap.count <= max(1, maps.count) else { throw UsageError("more --pagemap files than --maps files") }
        guard qemuMonitor == nil || pid != nil else { throw UsageError("--qemu-monitor needs --pid of the same QEMU") }
        guard watch == nil || qemuMonitor != nil else { throw UsageError("--watch needs --qemu-monitor") }
        guard hva == nil || mtree != nil else { throw UsageError("--hva needs --mtree") }
        guard mtree == nil || hva != nil || qemuTrace != nil else { throw UsageError("--mtree needs --hva (or --qemu-trace)") }
        guard (lspci == nil && guestLspci == nil && bar.isEmpty) || (qemuTrace != nil && maps.isEmpty && pid == nil) else {
            throw UsageError("--lspci, --guest-lspci and --bar place BARs for a --qemu-trace log recorded alone")
        }
        var recorder = Recorder()
        recorder.seed = seed
        guard let huge = parseTraceNumber(hugetlbSize), huge >= 4096, huge & (huge - 1) == 0 else {
            throw UsageError("--hugetlb-size must be a power of two of at least 4K, not '\(hugetlbSize)'")
        }
        recorder.hugetlbSize = huge
        let statements: [Statement]
        do {
            if let qemuMonitor, let pid, let watch {
                guard watch > 0, watch <= 3600, interval >= 0.01, interval <= watch else {
                    throw UsageError("--watch must be in (0, 3600] seconds and --interval in [0.01, --watch]")
                }
                statements = try watchQEMU(
                    socket: qemuMonitor, pid: pid, seconds: watch, interval: interval, recorder: &recorder, resume: resume)
            } else if let qemuMonitor, let pid {
                statements = try recordQEMU(socket: qemuMonitor, pid: pid, recorder: &recorder)
            } else {
                statements = try record(try sources(), recorder: &recorder)
            }
        } catch let e as RecordError {
            throw UsageError(e.description)
        }
        for a in recorder.assumptions { printError("pinreplay record: assumed: \(a)") }
        let form: TraceForm = text || output.hasSuffix(".txt") ? .text : .binary
        let writer = try TraceWriter(path: output, form: form)
        for s in statements { try writer.write(s) }
        try writer.finish()
    }

    private func sources() throws -> RecordSources {
        func openPagemap(_ path: String) throws -> Int32 {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw TraceError.io(file: path, "cannot open") }
            return fd  // closed at exit
        }
        if maps.isEmpty, pid == nil, let qemuTrace {
            // A bug report: the log is all there is.
            let text = try readProcText(qemuTrace)
            var src = RecordSources(mapsText: "", mapsName: qemuTrace)
            var given: [String: BARLocation] = [:]
            for b in bar {
                guard let (key, location) = BARLocation.parse(b) else {
                    throw UsageError("--bar must be BDF:N=HOST[@GUEST] in hex, e.g. 84:00.0:0=fa000000@f8000000, not '\(b)'")
                }
                given[key] = location
            }
            src.inferred = try inferMaps(
                fromQEMUTrace: text, file: qemuTrace, host: try lspci.map { try LspciBARs(try readProcText($0), file: $0) },
                guest: try guestLspci.map { try LspciBARs(try readProcText($0), file: $0) }, bars: given)
            src.qemuTrace = (text, qemuTrace)
            if let mtree {
                let table = try hva.map { parseGpa2hvaLines(try readProcText($0)) } ?? [:]
                src.flatView = (try readProcText(mtree), mtree, { table[$0] })
            }
            return src
        }
        let mapsPath = maps.first ?? "/proc/\(pid ?? 0)/maps"
        var src = RecordSources(mapsText: try readProcText(mapsPath), mapsName: mapsPath)
        if let path = pagemap.first ?? pid.map({ "/proc/\($0)/pagemap" }) { src.pagemapFD = try openPagemap(path) }
        for (i, path) in maps.enumerated().dropFirst() {
            src.laterSnapshots.append((try readProcText(path), path, i < pagemap.count ? try openPagemap(pagemap[i]) : nil))
        }
        src.memlock = pid.flatMap { memlockLimit(pid: $0) }
        src.capIpcLock = pid.flatMap { capIpcLock(pid: $0) }
        if let kpageflags {
            guard let fd = openKpageflags(kpageflags) else {
                throw TraceError.io(file: kpageflags, "cannot open")
            }
            src.kpageflagsFD = fd  // closed at exit
        } else if pid != nil {
            src.kpageflagsFD = openKpageflags()
        }
        if let mtree {
            let table = try hva.map { parseGpa2hvaLines(try readProcText($0)) } ?? [:]
            src.flatView = (try readProcText(mtree), mtree, { table[$0] })
        }
        if let qemuTrace { src.qemuTrace = (try readProcText(qemuTrace), qemuTrace) }
        if let bpftrace { src.bpftrace = (try readProcText(bpftrace), bpftrace) }
        return src
    }
}

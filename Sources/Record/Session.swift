import Foundation
import TraceFormat
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// What a recording is made of: a maps snapshot (with its pagemap) and, optionally, the map
/// requests of a QEMU flat view.
public struct RecordSources {
    /// The text of `/proc/PID/maps`.
    public var mapsText: String
    /// Where the maps text came from, for messages.
    public var mapsName: String
    /// `/proc/PID/pagemap`, open, when the process can be read; nil leaves frames assumed.
    public var pagemapFD: Int32?
    /// RLIMIT_MEMLOCK: nil when unknown, `.some(nil)` when unlimited.
    public var memlock: UInt64??
    /// Whether the process holds CAP_IPC_LOCK; nil when unknown.
    public var capIpcLock: Bool?
    /// `/proc/kpageflags` or a saved copy, to tell the zero page and reserved frames from ram.
    public var kpageflagsFD: Int32?
    /// Later snapshots of the same process (maps text, name, pagemap): each becomes the
    /// vma/munmap/pte changes since the one before.
    public var laterSnapshots: [(text: String, name: String, pagemapFD: Int32?)] = []
    /// `info mtree -f` text and how to find a section's host address.
    public var flatView: (text: String, source: String, hva: (UInt64) throws -> UInt64?)?
    /// A QEMU trace log of the VFIO listener's events.
    public var qemuTrace: (text: String, source: String)?
    /// Output of `tools/capture/vfio-dma.bt`.
    public var bpftrace: (text: String, source: String)?

    /// The address space when no memory map was saved: what `inferMaps(fromQEMUTrace:)` read
    /// from the trace log, used instead of `mapsText`.
    public var inferred: InferredSpace?

    /// A snapshot from maps text alone.
    public init(mapsText: String, mapsName: String) {
        self.mapsText = mapsText
        self.mapsName = mapsName
    }
}

/// Builds the trace statements of a recording.
public func record(_ src: RecordSources, recorder: inout Recorder) throws -> [Statement] {
    let entries = try src.inferred?.entries ?? parseMaps(src.mapsText, file: src.mapsName)
    let lookup = MapsLookup(entries)
    if src.inferred != nil {
        recorder.assume(
            "the address space is what the trace log's region_add host ranges cover (no memory map was given): each merged range an anonymous read-write mapping"
        )
    }
    var out = recorder.snapshot(
        maps: entries, pagemapFD: src.pagemapFD, memlock: src.memlock ?? nil, capIpcLock: src.capIpcLock,
        kpageflagsFD: src.kpageflagsFD)
    if let inferred = src.inferred {
        out += inferred.marks.map { .mark(TraceText($0)) }
        out += inferred.mmio.map { .pfns(.mmio, start: $0.start, count: $0.count) }
    }
    var previous = out
    for later in src.laterSnapshots {
        let next = recorder.snapshot(
            maps: try parseMaps(later.text, file: later.name), pagemapFD: later.pagemapFD, memlock: nil,
            capIpcLock: src.capIpcLock, kpageflagsFD: src.kpageflagsFD)
        out.append(.mark("snapshot \(later.name): what changed since the one before"))
        out += snapshotChanges(from: previous, to: next)
        previous = next
    }
    // With a trace log the requests come from the log; a flat view then only says which
    // sections are read-only.
    if let fv = src.flatView, src.qemuTrace == nil {
        let view = try parseFlatView(fv.text, source: fv.source)
        let maps = try listenerSections(view, hva: fv.hva).map(\.request)
        // Every map must land in a recorded VMA: a map outside one means the sources disagree.
        for m in maps {
            guard case let .map(iova, vaddr, _, _) = m else { continue }
            guard lookup.holds(vaddr) else {
                throw TraceError(
                    file: fv.source, .file, .impossible,
                    "section at guest \(hex(iova)) has host address \(hex(vaddr)), outside every mapping of \(src.mapsName)")
            }
        }
        out.append(.mark("realize: the vfio listener maps QEMU's flat view (RAM and ROM sections, ROM read-only)"))
        out += maps
    }
    if let log = src.qemuTrace {
        // The trace does not say which sections are read-only; a flat view does.
        let rom = try src.flatView.map { try parseFlatView($0.text, source: $0.source).filter { $0.kind == .rom } } ?? []
        if src.flatView == nil {
            let a = "maps from the QEMU trace are read-write (the trace does not say; give --mtree)"
            recorder.assume(a)
            out.append(.mark("assumed: \(a)"))
        }
        let parsed = try QEMUTraceLog(log.text, file: log.source) { gpa in rom.contains { $0.start <= gpa && gpa <= $0.last } }
        guard !parsed.statements.isEmpty || parsed.unplaceable > 0 else {
            throw TraceError(
                file: log.source, .file, .syntax,
                "no vfio_listener_region_add/del or vfio_dma_map/unmap event: not a trace log of QEMU's VFIO listener, or tracing was off")
        }
        if parsed.unplaceable > 0 {
            let a = "\(parsed.unplaceable) vIOMMU maps left out: QEMU's trace does not carry their host addresses"
            recorder.assume(a)
            out.append(.mark("assumed: \(a)"))
        }
        out.append(.mark("the VFIO listener's requests from \(log.source)"))
        for (s, line) in zip(parsed.statements, parsed.lines) {
            try checkInsideMaps(s, lookup, file: log.source, line: line)
            out.append(s)
        }
    }
    if let bt = src.bpftrace {
        out.append(.mark("the requests \(bt.source) saw on the host"))
        let requests = try parseBPFTrace(bt.text, file: bt.source)
        guard !requests.isEmpty else {
            throw TraceError(
                file: bt.source, .file, .syntax,
                "no MAP_DMA or UNMAP_DMA line: not output of tools/capture/vfio-dma.bt, or the process made no request")
        }
        for (s, line) in requests {
            try checkInsideMaps(s, lookup, file: bt.source, line: line)
            out.append(s)
        }
    }
    return out
}

/// The memory map a QEMU trace log implies when no other is at hand (a bug report): each
/// BAR mmap placed by `placeBARs()` a vfio-pci mapping (io pfnmap linear at its host address),
/// every other `region_add` host range an anonymous read-write mapping, ranges merged where
/// they overlap or touch, in address order; with a mark for every inference.
public struct InferredSpace: Sendable {
    /// The mappings, as maps lines would give them.
    public var entries: [MapsEntry] = []
    /// One line per inference, in the order made.
    public var marks: [String] = []
    /// Host frame ranges of the placed BARs (device memory: no struct page).
    public var mmio: [(start: UInt64, count: UInt64)] = []
}

/// Infers the address space of a QEMU trace log; `host`, `guest` and `bars` place BARs.
public func inferMaps(
    fromQEMUTrace text: String, file: String, host: LspciBARs? = nil, guest: LspciBARs? = nil,
    bars: [String: BARLocation] = [:]
) throws(TraceError) -> InferredSpace {
    let parsed = try QEMUTraceLog(text, file: file) { _ in false }
    var out = InferredSpace()
    let (placed, unplaced) = placeBARs(parsed, host: host, guest: guest, given: bars)
    for b in placed {
        out.entries.append(
            MapsEntry(
                start: b.start, end: b.end, read: true, write: true, exec: false, shared: true, offset: b.hostPhys,
                path: MapsEntry.inferredBAR))
        out.marks.append("inferred: host \(hex(b.start))-\(hex(b.end)) is \(b.why): a vfio-pci mmap (io pfnmap linear)")
        out.mmio.append((b.hostPhys >> 12, (b.end - b.start) >> 12))
    }
    out.marks += unplaced.map { "inferred: \($0)" }
    var ranges: [(start: UInt64, end: UInt64)] = []
    for s in parsed.statements {
        guard case let .map(_, vaddr, size, _) = s else { continue }
        let start = vaddr & ~0xFFF
        let end = (vaddr &+ size &+ 0xFFF) & ~0xFFF
        guard end > start, !placed.contains(where: { $0.start <= start && end <= $0.end }) else { continue }
        ranges.append((start, end))
    }
    var merged: [MapsEntry] = []
    for r in ranges.sorted(by: { $0.start < $1.start }) {
        if let last = merged.last, r.start <= last.end {
            merged[merged.count - 1].end = max(last.end, r.end)
        } else {
            merged.append(MapsEntry(start: r.start, end: r.end, read: true, write: true, exec: false, shared: false, offset: 0, path: ""))
        }
    }
    out.marks += merged.map { "inferred: host \(hex($0.start))-\(hex($0.end)) is anonymous read-write memory (region_add ranges)" }
    out.entries = (out.entries + merged).sorted { $0.start < $1.start }
    return out
}

/// A captured map whose host address lies in none of the recorded mappings means the capture
/// and the memory map do not belong together.
func checkInsideMaps(_ s: Statement, _ maps: MapsLookup, file: String, line: Int) throws(TraceError) {
    guard case let .map(iova, vaddr, _, _) = s else { return }
    guard maps.holds(vaddr) else {
        throw TraceError(
            file: file, .line(line), .impossible,
            "map of iova \(hex(iova)) at host address \(hex(vaddr)) lies outside every recorded mapping")
    }
}

/// The mappings of a recording, sorted once for lookups by address: a request checked against
/// them costs a binary search, not a pass over every mapping.
struct MapsLookup {
    private let starts: [UInt64]
    /// The highest end among the mappings sorted up to each one.
    private let reach: [UInt64]

    init(_ entries: [MapsEntry]) {
        let sorted = entries.sorted { $0.start < $1.start }
        starts = sorted.map(\.start)
        var top: UInt64 = 0
        reach = sorted.map { e in
            top = max(top, e.end)
            return top
        }
    }

    /// Whether some mapping holds `vaddr`.
    func holds(_ vaddr: UInt64) -> Bool {
        // The mappings starting at or below vaddr are starts[..<lo]; one holds it if any reaches past it.
        var lo = 0
        var hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= vaddr { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 && vaddr < reach[lo - 1]
    }
}

/// Records a running QEMU: its flat view and section addresses over QMP, its memory map and
/// pagemap from /proc.
public func recordQEMU(socket: String, pid: Int32, recorder: inout Recorder) throws -> [Statement] {
    let qmp = try QMPClient(socket: socket)
    let mtree = try qmp.hmp("info mtree -f")
    var src = RecordSources(mapsText: try readProcText("/proc/\(pid)/maps"), mapsName: "/proc/\(pid)/maps")
    let fd = open("/proc/\(pid)/pagemap", O_RDONLY | O_CLOEXEC)
    src.pagemapFD = fd >= 0 ? fd : nil
    defer { if fd >= 0 { close(fd) } }
    src.memlock = memlockLimit(pid: pid)
    src.capIpcLock = capIpcLock(pid: pid)
    src.kpageflagsFD = openKpageflags()
    src.flatView = (mtree, "\(socket) (info mtree -f)", qmp.gpa2hva)
    return try record(src, recorder: &recorder)
}

/// A whole text file, /proc files included (they report a size of 0).
public func readProcText(_ path: String) throws -> String {
    guard let h = FileHandle(forReadingAtPath: path) else {
        throw TraceError.io(file: path, "cannot open")
    }
    defer { try? h.close() }
    return String(decoding: (try h.readToEnd()) ?? Data(), as: UTF8.self)
}

/// What changed between two memory-map snapshots, as statements: the mappings that went or
/// changed are unmapped, the new ones declared.
func diffMaps(_ old: [MapsEntry], _ new: [MapsEntry], recorder: inout Recorder) -> [Statement] {
    let before = Set(old.map(EntryKey.init))
    let after = Set(new.map(EntryKey.init))
    var out: [Statement] = []
    for e in old where !after.contains(EntryKey(e)) && e.path != "[vsyscall]" {
        out.append(.munmap(start: e.start, end: e.end))
    }
    for e in new where !before.contains(EntryKey(e)) {
        if let v = recorder.vma(e) { out.append(.vma(v)) }
    }
    return out
}

private struct EntryKey: Hashable {
    var start, end, offset: UInt64
    var perms: String
    var path: String
    init(_ e: MapsEntry) {
        start = e.start
        end = e.end
        offset = e.offset
        perms = "\(e.read)\(e.write)\(e.exec)\(e.shared)"
        path = e.path
    }
}

/// Watches a running QEMU for `seconds`, polling its memory map and flat view every
/// `interval` seconds: each change becomes `vma`/`munmap` statements and the unmaps and maps
/// the VFIO listener would issue for it (region_del before region_add), so a boot recorded
/// this way reads like the listener's own stream.
public func watchQEMU(
    socket: String, pid: Int32, seconds: Double, interval: Double, recorder: inout Recorder, resume: Bool = false
) throws -> [Statement] {
    let qmp = try QMPClient(socket: socket)
    func sections() throws -> Set<MappedSection> {
        let view = try parseFlatView(try qmp.hmp("info mtree -f"), source: "\(socket) (info mtree -f)")
        return Set(try listenerSections(view, hva: qmp.gpa2hva))
    }
    var maps = try parseMaps(try readProcText("/proc/\(pid)/maps"), file: "/proc/\(pid)/maps")
    let fd = open("/proc/\(pid)/pagemap", O_RDONLY | O_CLOEXEC)
    defer { if fd >= 0 { close(fd) } }
    let memlock = memlockLimit(pid: pid)
    let kfd = openKpageflags()
    defer { if let kfd { close(kfd) } }
    var out = recorder.snapshot(
        maps: maps, pagemapFD: fd >= 0 ? fd : nil, memlock: memlock ?? nil, capIpcLock: capIpcLock(pid: pid), kpageflagsFD: kfd)
    var mapped = try sections()
    out.append(.mark("realize: the vfio listener maps QEMU's flat view"))
    out += mapped.sorted { $0.iova < $1.iova }.map(\.request)
    if resume { _ = try qmp.hmp("cont") }
    let clock = ContinuousClock()
    let end = clock.now + .milliseconds(Int(seconds * 1000))
    var poll = 0
    while clock.now < end {
        usleep(useconds_t(interval * 1_000_000))
        poll += 1
        guard let text = try? readProcText("/proc/\(pid)/maps"), !text.isEmpty else { break }  // QEMU exited
        let newMaps = try parseMaps(text, file: "/proc/\(pid)/maps")
        let vmaChanges = diffMaps(maps, newMaps, recorder: &recorder)
        maps = newMaps
        let now = try sections()
        let gone = mapped.subtracting(now).sorted { $0.iova < $1.iova }
        let added = now.subtracting(mapped).sorted { $0.iova < $1.iova }
        mapped = now
        if vmaChanges.isEmpty && gone.isEmpty && added.isEmpty { continue }
        out.append(.mark("poll \(poll) (+\(formatSeconds(Double(poll) * interval))): the flat view changed"))
        // region_del before the mappings behind it change, region_add after.
        out += gone.map { .unmap(iova: $0.iova, size: $0.size) }
        out += vmaChanges
        out += added.map(\.request)
    }
    for a in recorder.assumptions where !out.contains(.mark("assumed: \(a)")) { out.append(.mark("assumed: \(a)")) }
    return out
}

private func formatSeconds(_ s: Double) -> String {
    let ms = Int((s * 1000).rounded())
    return "\(ms / 1000).\(String(repeating: "0", count: 3 - String(ms % 1000).count))\(ms % 1000) s"
}

/// The statements that turn one snapshot's state into the next: munmaps of VMAs that went,
/// the VMAs that came or changed, `pte ... none` where pages went, the classes of new frames,
/// then the ptes that came (all of them inside a VMA declared anew, which dropped its ptes).
func snapshotChanges(from old: [Statement], to new: [Statement]) -> [Statement] {
    func vmas(_ s: [Statement]) -> [VMASpec] { s.compactMap { if case .vma(let v) = $0 { v } else { nil } } }
    let oldVMAs = vmas(old)
    let newVMAs = vmas(new)
    let oldSet = Set(old.map(\.canonicalText))
    let newSet = Set(new.map(\.canonicalText))
    var out: [Statement] = []
    for v in oldVMAs where !newSet.contains(Statement.vma(v).canonicalText) {
        out.append(.munmap(start: v.start.rawValue, end: v.end.rawValue))
    }
    let fresh = newVMAs.filter { !oldSet.contains(Statement.vma($0).canonicalText) }
    out += fresh.map { .vma($0) }
    for s in old {
        if case let .pte(vaddr, count, _?, _, _) = s, !newSet.contains(s.canonicalText) {
            out.append(.pte(vaddr: vaddr, count: count, pfn: nil, readOnly: false))
        }
    }
    for s in new {
        switch s {
        case .pfns, .zeroPage:
            if !oldSet.contains(s.canonicalText) { out.append(s) }
        default: break
        }
    }
    for s in new {
        guard case let .pte(vaddr, _, _, _, _) = s else { continue }
        if !oldSet.contains(s.canonicalText) || fresh.contains(where: { $0.vma.contains(VAddr(vaddr)) }) { out.append(s) }
    }
    return out
}

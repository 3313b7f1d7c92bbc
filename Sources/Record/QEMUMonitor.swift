import TraceFormat

/// One range of a QEMU flat view (`info mtree -f`).
public struct FlatRange: Equatable, Sendable {
    /// First guest-physical or IOVA address of the range.
    public var start: UInt64
    /// Inclusive, as QEMU prints it.
    public var last: UInt64
    /// What QEMU says the range is.
    public var kind: Kind
    /// The memory region's name.
    public var name: String
}

extension FlatRange {
    /// A flat range's kind as `info mtree -f` prints it; only the first three are DMA-mapped
    /// by QEMU's vfio listener.
    public enum Kind: Equatable, Sendable {
        case ram
        case rom
        /// A RAM device: a vfio BAR mmap.
        case ramd
        /// `i/o`, `romd` and the rest: not mapped for DMA.
        case other(String)

        /// Parses the monitor's output text.
        public init(_ text: String) {
            switch text {
            case "ram": self = .ram
            case "rom": self = .rom
            case "ramd": self = .ramd
            default: self = .other(text)
            }
        }

        /// Whether QEMU's vfio listener maps such a range for DMA.
        public var isMapped: Bool {
            switch self {
            case .ram, .rom, .ramd: true
            case .other: false
            }
        }
    }
}

/// The flat view of the `memory` address space (the one QEMU's VFIO listener watches) from
/// `info mtree -f` output; errors name the source and line.
public func parseFlatView(_ text: String, source: String) throws(TraceError) -> [FlatRange] {
    var out: [FlatRange] = []
    var inMemoryView = false
    var seenView = false
    for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
        let line = raw.trimmingSuffixBlanks
        let trimmed = line.drop { $0 == " " }
        if trimmed.hasPrefix("FlatView #") {
            if inMemoryView { break }
            seenView = true
            continue
        }
        if trimmed.hasPrefix("AS \"") {
            if trimmed.hasPrefix("AS \"memory\"") { inMemoryView = true }
            continue
        }
        guard inMemoryView, let dash = trimmed.firstIndex(of: "-"), trimmed.first?.isHexDigit == true else { continue }
        func bad(_ what: String) -> TraceError {
            TraceError(file: source, .line(i + 1), .syntax, "not a flat view range (\(what)): '\(line.prefix(80))'")
        }
        guard let start = UInt64(trimmed[..<dash], radix: 16) else { throw bad("start") }
        let rest = trimmed[trimmed.index(after: dash)...]
        guard let space = rest.firstIndex(of: " "), let last = UInt64(rest[..<space], radix: 16), last >= start else {
            throw bad("end")
        }
        // " (prio 0, ram): pc.ram @0000000000100000 KVM"
        guard let open = rest.firstIndex(of: "("), let close = rest.firstIndex(of: ")"), open < close,
            let colon = rest[close...].firstIndex(of: ":")
        else { throw bad("attributes") }
        let attrs = rest[rest.index(after: open)..<close].split(separator: ",").map { $0.drop { $0 == " " } }
        guard let kind = attrs.last.map(String.init) else { throw bad("type") }
        let name = rest[rest.index(after: colon)...].drop { $0 == " " }.split(separator: " ").first.map(String.init) ?? ""
        out.append(FlatRange(start: start, last: last, kind: FlatRange.Kind(kind), name: name))
    }
    guard seenView && inMemoryView else {
        throw TraceError(file: source, .file, .syntax, "no flat view of the \"memory\" address space (is this 'info mtree -f' output?)")
    }
    return out
}

/// A section QEMU's VFIO listener maps: guest range trimmed to whole pages, host address,
/// read-only for ROM.
public struct MappedSection: Hashable, Sendable {
    /// Where the device sees the mapping.
    public var iova: UInt64
    /// Bytes mapped.
    public var size: UInt64
    /// QEMU's host virtual address backing it.
    public var vaddr: UInt64
    /// Mapped for device reads only (ROM, read-only sections).
    public var readOnly: Bool

    /// Its `VFIO_IOMMU_MAP_DMA`.
    public var request: Statement {
        .map(iova: iova, vaddr: vaddr, size: size, access: readOnly ? .read : [.read, .write])
    }
}

/// The sections QEMU's listener maps for a flat view: RAM, ROM and RAM device sections,
/// trimmed to whole pages; `hva` gives each section's host address (`gpa2hva`). Sections it
/// cannot map (I/O, ROM devices) are left out, as QEMU does.
public func listenerSections(_ view: [FlatRange], hva: (UInt64) throws -> UInt64?) rethrows -> [MappedSection] {
    var out: [MappedSection] = []
    for r in view where r.kind.isMapped {
        let iova = (r.start + 0xFFF) & ~0xFFF
        let end = (r.last &+ 1) & ~0xFFF
        guard end > iova, let base = try hva(r.start) else { continue }
        out.append(MappedSection(iova: iova, size: end - iova, vaddr: base + (iova - r.start), readOnly: r.kind == .rom))
    }
    return out
}

/// The host address in `gpa2hva` output ("Host virtual address for 0x100000 (pc.ram) is
/// 0x7f...") or nil when QEMU says there is none.
public func parseGpa2hva(_ text: String) -> UInt64? {
    guard let r = text.split(separator: " ").last(where: { $0.hasPrefix("0x") }),
        text.contains("Host virtual address")
    else { return nil }
    return UInt64(r.dropFirst(2).prefix { $0.isHexDigit }, radix: 16)
}

/// Reads `gpa2hva` answers saved one per line: guest address -> host address.
public func parseGpa2hvaLines(_ text: String) -> [UInt64: UInt64] {
    var out: [UInt64: UInt64] = [:]
    for line in text.split(whereSeparator: \.isNewline) {
        let words = line.split(separator: " ")
        guard let i = words.firstIndex(of: "for"), i + 1 < words.count, words[i + 1].hasPrefix("0x"),
            let gpa = UInt64(words[i + 1].dropFirst(2), radix: 16), let hva = parseGpa2hva(String(line))
        else { continue }
        out[gpa] = hva
    }
    return out
}

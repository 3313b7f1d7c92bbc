import TraceFormat
import VFIOModel

/// How the HTML report colours a VMA: guest RAM, ROM images, device BARs, the rest.
public enum VMAKind: String, CaseIterable, Sendable {
    case ram = "RAM", rom = "ROM", bar = "BAR", other

    /// BARs are VM_IO/VM_PFNMAP; ROMs are QEMU's ROM and firmware blocks (writable anon memory
    /// the guest only reads) or read-only mappings; RAM is the remaining writable memory.
    public init(_ v: VMASpec) {
        let name = v.name.string.lowercased()
        if v.flags.contains(.io) || v.flags.contains(.pfnmap) {
            self = .bar
        } else if name.contains("rom") || name.contains("bios") || (v.read && !v.write) {
            self = .rom
        } else if v.write && !v.flags.contains(.mixedmap) {
            self = .ram
        } else {
            self = .other
        }
    }
}

/// The class of a stretch of frames as the report labels it.
public enum PfnLabel: String, Sendable {
    case zeroPage = "zero page", reserved, mmio, ram
}

/// Frames of one label inside a chunk, in pfn order.
public struct PfnSpan: Equatable, Sendable {
    /// The frames' class.
    public var label: PfnLabel
    /// How many consecutive frames have it.
    public var pages: UInt64
}

/// A finding placed in the address space: the vaddr range of the request it came at.
public struct MapMarker: Sendable {
    /// The event of the request.
    public var event: Int
    /// First address it names.
    public var start: UInt64
    /// Address just past the range it names.
    public var end: UInt64
    /// A divergence or a violation, and its kind.
    public var finding: FindingKind
}

/// What the HTML report draws beside the findings: the process's address space over the whole
/// trace (every VMA it ever had, by kind), the vaddr ranges DMA-mapped, where each kept finding
/// happened, and the classes of the frames in the kept divergences' chunks. Bounded: past
/// `maxRuns` extents new VMAs and map ranges are counted, not kept.
public struct AddressMap: Sendable {
    /// VMAs in address order: `[start, end)` in bytes.
    public var vmas: [(start: UInt64, end: UInt64, kind: VMAKind, name: String)] = []
    /// Vaddr ranges a map succeeded on for at least one engine, merged, in address order.
    public var mapped: [(start: UInt64, end: UInt64)] = []
    /// Vaddr ranges of maps that failed on every engine.
    public var failed: [(start: UInt64, end: UInt64)] = []
    /// Kept findings, where the request that caused them lies (teardown findings have none).
    public var markers: [MapMarker] = []
    /// The request text at each event with a kept finding.
    public var requests: [Int: String] = [:]
    /// For each kept divergence's event: per engine, per chunk (or pinned pfn), the frames'
    /// classes; at most `chunksLabelled` chunks per engine.
    public var pfnLabels: [Int: [[[PfnSpan]]]] = [:]
    /// VMAs and map ranges not kept because the map had reached `maxRuns` extents.
    public var dropped = 0

    /// Extents kept for each of the VMAs and the map ranges.
    public static let maxRuns = 20_000
    /// Chunks per engine whose frames are labelled (the report shows fewer).
    public static let chunksLabelled = 64
}

/// Builds an `AddressMap` as the replay runs.
public struct AddressMapObserver: ReplayObserver {
    private struct VMALabel: ConstantRunValue {
        var kind: VMAKind
        var name: TraceText
    }

    /// The vaddr page an iova page of a live dma maps, advancing along the run.
    private struct DMATarget: RunValue {
        var vpage: UInt64
        func advanced(by offset: UInt64) -> DMATarget { DMATarget(vpage: vpage &+ offset) }
    }

    private var vmas = RunMap<VMALabel>()
    private var mapped = RunMap<Bool>()
    private var failed = RunMap<Bool>()
    /// Live dmas, by iova page: to place an unmap or a pin in the address space.
    private var dma = RunMap<DMATarget>()
    /// Frame classes as the trace declares them, to label chunks.
    private var phys = PhysMem()
    private var current: (event: Int, statement: Statement, range: (start: UInt64, end: UInt64)?)?
    private var lastOutcomes: [RequestOutcome] = []
    /// The map built so far.
    public private(set) var map = AddressMap()

    /// An observer with an empty map.
    public init() {}

    /// Page numbers stay below 2^52 whatever a trace asks for.
    private static let pageLimit: UInt64 = 1 << 52

    private static func pages(_ start: UInt64, _ bytes: UInt64) -> (UInt64, UInt64)? {
        let first = start >> PAGE_SHIFT
        guard first < pageLimit else { return nil }
        let count = min((bytes &+ PAGE_SIZE &- 1) >> PAGE_SHIFT, pageLimit - first)
        return count > 0 ? (first, count) : nil
    }

    private static func keep<V>(_ m: inout RunMap<V>, _ start: UInt64, _ bytes: UInt64, _ value: V, dropped: inout Int) {
        guard let (first, count) = pages(start, bytes) else { return }
        guard m.runCount < AddressMap.maxRuns else {
            dropped += 1
            return
        }
        m.assign(first, count, value)
    }

    /// Follows the VMAs, frame classes and maps as the trace declares them.
    public mutating func statement(event: Int, _ s: Statement) {
        var range: (UInt64, UInt64)?
        switch s {
        case .vma(let v):
            Self.keep(&vmas, v.start.rawValue, v.end - v.start, VMALabel(kind: VMAKind(v), name: v.name), dropped: &map.dropped)
        case let .pfns(kind, start, count):
            phys.declare(kind, start: PFN(start), count: min(count, Self.pageLimit))
        case let .pool(start, count):
            phys.addPool(start: PFN(start), count: min(count, Self.pageLimit))
        case .zeroPage(let pfn):
            phys.zeroPfn = PFN(pfn)
        case let .map(_, vaddr, size, _):
            range = (vaddr, vaddr &+ size)
        case let .unmap(iova, size):
            guard let (first, count) = Self.pages(iova, size) else { break }
            var low = UInt64.max
            var high: UInt64 = 0
            dma.forEachSegment(from: first, count: count) { _, n, target in
                guard let target else { return }
                low = min(low, target.vpage)
                high = max(high, target.vpage &+ n)
            }
            if low < high { range = (low << PAGE_SHIFT, high << PAGE_SHIFT) }
        case let .pin(iova, count, _), let .unpin(iova, count):
            if let (first, _) = Self.pages(iova, 1), let target = dma.value(at: first) {
                range = (target.vpage << PAGE_SHIFT, (target.vpage &+ min(count, Self.pageLimit)) << PAGE_SHIFT)
            }
        default:
            break
        }
        current = (event, s, range)
    }

    /// Marks the request on the map.
    public mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
        lastOutcomes = outcomes
        guard let s = current?.statement else { return }
        switch s {
        case let .map(iova, vaddr, size, _):
            if outcomes.contains(where: { $0.ret == 0 }) {
                Self.keep(&mapped, vaddr, size, true, dropped: &map.dropped)
                if let (first, count) = Self.pages(iova, size) { dma.assign(first, count, DMATarget(vpage: vaddr >> PAGE_SHIFT)) }
            } else {
                Self.keep(&failed, vaddr, size, true, dropped: &map.dropped)
            }
        case let .unmap(iova, size):
            if let (first, count) = Self.pages(iova, size) { dma.assign(first, count, nil) }
        case .unmapAll:
            if outcomes.contains(where: { $0.ret == 0 }) { dma = RunMap() }
        default:
            break
        }
    }

    /// Marks a kept finding at its request.
    public mutating func finding(event: Int, _ finding: FindingKind) {
        guard let current, current.event == event else { return }
        map.requests[event] = current.statement.canonicalText
        if let range = current.range {
            map.markers.append(MapMarker(event: event, start: range.start, end: range.end, finding: finding))
        }
        if case .divergence = finding, map.pfnLabels[event] == nil {
            var labelled: [[[PfnSpan]]] = []
            for o in lastOutcomes { labelled.append(labels(o)) }
            map.pfnLabels[event] = labelled
        }
    }

    /// The frames of each chunk (or pinned pfn) of an outcome, by class.
    private mutating func labels(_ o: RequestOutcome) -> [[PfnSpan]] {
        switch o {
        case .map(_, let chunks, _):
            return chunks.prefix(AddressMap.chunksLabelled).map { spans($0.pfn, $0.npage) }
        case .pin(_, let pfns, _):
            return pfns.prefix(AddressMap.chunksLabelled).map { spans($0, 1) }
        case .unmap, .unpin, .notRun:
            return []
        }
    }

    private mutating func spans(_ pfn: PFN, _ npage: UInt64) -> [PfnSpan] {
        var out: [PfnSpan] = []
        func add(_ label: PfnLabel, _ n: UInt64) {
            if let last = out.last, last.label == label {
                out[out.count - 1].pages += n
            } else {
                out.append(PfnSpan(label: label, pages: n))
            }
        }
        let zero = phys.zeroPfn?.rawValue
        phys.forEachClassSegment(pfn, min(npage, Self.pageLimit)) { start, n, cls in
            if let zero, start.rawValue <= zero, zero < start.rawValue &+ n {
                if zero > start.rawValue { add(PfnLabel(cls), zero - start.rawValue) }
                add(.zeroPage, 1)
                if start.rawValue &+ n > zero + 1 { add(PfnLabel(cls), start.rawValue &+ n - zero - 1) }
            } else {
                add(PfnLabel(cls), n)
            }
        }
        return out
    }

    /// The map, with the extents gathered into arrays for rendering.
    public func finish() -> AddressMap {
        var m = map
        m.vmas = vmas.runs.map {
            ($0.start << PAGE_SHIFT, $0.end << PAGE_SHIFT, $0.value.kind, $0.value.name.string)
        }
        m.mapped = mapped.runs.map { ($0.start << PAGE_SHIFT, $0.end << PAGE_SHIFT) }
        m.failed = failed.runs.map { ($0.start << PAGE_SHIFT, $0.end << PAGE_SHIFT) }
        return m
    }
}

extension PfnLabel {
    init(_ cls: PfnClass) {
        switch cls {
        case .ram: self = .ram
        case .reserved: self = .reserved
        case .mmio: self = .mmio
        }
    }
}

/// What kind of memory a physical frame is (SPEC.md §2); a `pfns` statement's class. The raw
/// values are the binary trace form's (docs/FORMAT.md).
public enum PfnClass: UInt8, Sendable, CaseIterable, ConstantRunValue, CustomStringConvertible {
    /// Ordinary RAM: has a struct page, not PageReserved.
    case ram = 0
    /// Has a struct page with PageReserved set: the zero page, firmware, the kernel image.
    case reserved = 1
    /// No struct page (`pfn_valid()` is false): device BARs and every undeclared frame.
    case mmio = 2

    /// The keyword a trace spells the class with.
    public var description: String {
        switch self {
        case .ram: "ram"
        case .reserved: "reserved"
        case .mmio: "mmio"
        }
    }
}

/// Physical memory: frame classes, the free pool that faults draw from, and the page
/// reference deltas that GUP and `put_pfn()` move.
public struct PhysMem {
    /// Classes set by `pfns` statements; the last statement covering a frame wins.
    public private(set) var declared = RunMap<PfnClass>()
    /// Every frame that ever lay in a `pool` range (ram unless declared otherwise).
    public private(set) var poolEver = RunMap<Bool>()
    /// Frames still free in the pool, handed out lowest first; they never come back.
    var poolFree = PoolRuns()
    /// The shared zero page, if the trace declared one.
    public var zeroPfn: PFN? { didSet { generation &+= 1 } }
    /// Moves whenever a frame's class or the zero page changes: what a cached lookup checks.
    public private(set) var generation: UInt64 = 0
    /// Reference deltas of frames with a struct page (ram and reserved); absent means 0.
    public private(set) var refs = RunMap<Int64>()
    /// The stretch of frames the last class lookup found, all of one class: a walk asks about
    /// the next frame of the same stretch again and again.
    @usableFromInline var finger: (start: UInt64, end: UInt64, cls: PfnClass) = (0, 0, .mmio)

    /// Physical memory with nothing declared: every frame mmio.
    public init() {}

    /// The class of `pfn`: its last `pfns` statement, else ram if it was ever pooled, else mmio.
    /// Remembers the stretch it lies in for the next lookup.
    @inlinable
    public mutating func pfnClassCached(_ pfn: PFN) -> PfnClass {
        let p = pfn.rawValue
        if finger.start <= p && p < finger.end { return finger.cls }
        finger = classStretch(p)
        return finger.cls
    }

    /// The class at `p` and the largest stretch around it where the class cannot change.
    public func classStretch(_ p: UInt64) -> (start: UInt64, end: UInt64, cls: PfnClass) {
        if let r = declared.run(at: p) { return (p, r.end, r.value) }
        let gapEnd = declared.nextCovered(from: p) ?? UInt64.max
        if let r = poolEver.run(at: p) { return (p, min(r.end, gapEnd), .ram) }
        return (p, min(poolEver.nextCovered(from: p) ?? UInt64.max, gapEnd), .mmio)
    }

    /// A `pfns` statement.
    public mutating func declare(_ cls: PfnClass, start: PFN, count: UInt64) {
        generation &+= 1
        declared.assign(start.rawValue, count, cls)
        finger = (0, 0, .mmio)
    }

    /// A `pool` statement: the range becomes free for faults.
    public mutating func addPool(start: PFN, count: UInt64) {
        generation &+= 1
        poolEver.assign(start.rawValue, count, true)
        poolFree.add(start.rawValue, count)
        finger = (0, 0, .mmio)
    }

    /// Takes the lowest free pool frame.
    public mutating func allocPage() -> PFN? { poolFree.takeLowest().map { PFN($0) } }

    /// Takes the lowest free, naturally aligned block of `npages` frames (a huge page).
    public mutating func allocAligned(npages: UInt64) -> PFN? {
        precondition(npages > 0 && npages & (npages - 1) == 0, "huge page of \(npages) pages")
        return poolFree.takeAligned(npages).map { PFN($0) }
    }

    /// Calls `body` for every piece of `[start, start + count)` over which the class stays the same.
    public func forEachClassSegment(_ start: PFN, _ count: UInt64, _ body: (PFN, UInt64, PfnClass) -> Void) {
        declared.forEachSegment(from: start.rawValue, count: count) { s, n, cls in
            if let cls {
                body(PFN(s), n, cls)
                return
            }
            poolEver.forEachSegment(from: s, count: n) { ps, pn, pooled in
                body(PFN(ps), pn, pooled != nil ? .ram : .mmio)
            }
        }
    }

    /// Frames left in the pool.
    public var poolFreePages: UInt64 { poolFree.pages }

    /// References not yet written to `refs`: consecutive frames that each got `delta` once.
    /// GUP and `put_pfn()` walk frame after frame, so a run of them costs one update.
    @usableFromInline var pending: (start: UInt64, count: UInt64, delta: Int64) = (0, 0, 0)
    /// Frames that went below zero references as pending runs were written: the first, the
    /// lowest count, how many times.
    public private(set) var underflow: (pfn: PFN, delta: Int64, pages: UInt64)?

    /// Adds `delta` (±1) to the reference count of one frame.
    @inlinable
    public mutating func addRef(_ pfn: PFN, _ delta: Int64) {
        if pending.count > 0 && pfn.rawValue == pending.start &+ pending.count && delta == pending.delta {
            pending.count += 1
            return
        }
        flushRefs()
        pending = (pfn.rawValue, 1, delta)
    }

    /// `addRef()` of `count` consecutive frames from `pfn`, each by `delta`.
    public mutating func addRefs(_ pfn: PFN, _ count: UInt64, _ delta: Int64) {
        guard count > 0 else { return }
        if pending.count > 0 && pfn.rawValue == pending.start &+ pending.count && delta == pending.delta {
            pending.count += count
            return
        }
        flushRefs()
        pending = (pfn.rawValue, count, delta)
    }

    /// Writes the pending run into `refs`, noting frames that go below zero.
    public mutating func flushRefs() {
        guard pending.count > 0 else { return }
        let p = pending
        pending.count = 0
        refs.update(p.start, p.count) { old in
            let v = (old ?? 0) + p.delta
            return v == 0 ? nil : v
        }
        guard p.delta < 0 else { return }
        refs.forEachSegment(from: p.start, count: p.count) { start, n, v in
            guard let v, v < 0 else { return }
            if let u = underflow {
                underflow = (u.pfn, min(u.delta, v), u.pages + n)
            } else {
                underflow = (PFN(start), v, n)
            }
        }
    }

    /// Takes the underflows noted so far.
    public mutating func takeUnderflow() -> (pfn: PFN, delta: Int64, pages: UInt64)? {
        // Only pending puts can underflow; pending references taken may wait.
        if pending.delta < 0 { flushRefs() }
        defer { underflow = nil }
        return underflow
    }

    /// The reference delta of one frame, pending references included.
    public func refDelta(_ pfn: PFN) -> Int64 {
        let p = pending
        let extra = p.count > 0 && p.start <= pfn.rawValue && pfn.rawValue < p.start + p.count ? p.delta : 0
        return (refs.value(at: pfn.rawValue) ?? 0) + extra
    }
}

/// The free pool: the frames free to fault in, as runs. Faults take the lowest frame (or the
/// lowest aligned block) again and again; a run map keeps that and out-of-order additions
/// O(log n) in the number of fragments.
struct PoolRuns {
    private var free = RunMap<Bool>()

    /// Frames left.
    var pages: UInt64 { free.runs.reduce(0) { $0 + $1.count } }

    /// Makes `[start, start + count)` free (again, if it was used).
    mutating func add(_ start: UInt64, _ count: UInt64) {
        free.assign(start, count, true)
    }

    /// The lowest free frame, taken.
    mutating func takeLowest() -> UInt64? {
        free.removeFirstKey()
    }

    /// The lowest free block of `n` frames aligned to `n`, taken.
    mutating func takeAligned(_ n: UInt64) -> UInt64? {
        var key: UInt64 = 0
        while let at = free.nextCovered(from: key), let r = free.run(at: at) {
            let aligned = (r.start + n - 1) & ~(n - 1)
            if aligned + n <= r.end {
                free.assign(aligned, n, nil)
                return aligned
            }
            key = r.end
        }
        return nil
    }
}

/// One chunk handed to `iommu_map()`: a `vfio_pin_pages_remote()` result at its iova.
public struct Chunk: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Where the device sees the chunk.
    public var iova: IOVA
    /// Its first frame.
    public var pfn: PFN
    /// Pages, at consecutive iovas and frames.
    public var npage: UInt64
    /// A chunk of `npage` pages.
    public init(iova: IOVA, pfn: PFN, npage: UInt64) {
        self.iova = iova
        self.pfn = pfn
        self.npage = npage
    }
    public var description: String { "[\(iova), \(pfn), \(npage)]" }
}

/// The observable outcome of one request on one engine (SPEC.md §4).
public enum RequestOutcome: Equatable, Sendable {
    /// `VFIO_IOMMU_MAP_DMA`: return code, the chunks passed to `iommu_map()` (also those
    /// unwound after a failure), `locked_vm` after the request.
    case map(ret: Int, chunks: [Chunk], lockedVM: Int64)
    /// `VFIO_IOMMU_UNMAP_DMA`: return code, bytes unmapped, `locked_vm` after.
    case unmap(ret: Int, unmapped: UInt64, lockedVM: Int64)
    /// External pin: the kernel's return value, the pfns pinned (empty on failure).
    case pin(ret: Int, pfns: [PFN], lockedVM: Int64)
    /// External unpin: the kernel's return value.
    case unpin(ret: Int, lockedVM: Int64)
    /// A request the engine never answered: it crashed (or hung) at an earlier one.
    case notRun(op: String)

    /// The request's return code (0 or a negative errno).
    public var ret: Int {
        switch self {
        case .map(let r, _, _), .unmap(let r, _, _), .pin(let r, _, _), .unpin(let r, _): r
        case .notRun: 0
        }
    }
    /// `locked_vm` after the request, in pages (external pins leave it out).
    public var lockedVM: Int64 {
        switch self {
        case .map(_, _, let l), .unmap(_, _, let l), .pin(_, _, let l), .unpin(_, let l): l
        case .notRun: 0
        }
    }
    /// The request kind as the jsonl `op` field spells it.
    public var op: String {
        switch self {
        case .map: "map"
        case .unmap: "unmap"
        case .pin: "pin"
        case .unpin: "unpin"
        case .notRun(let op): op
        }
    }
    /// Whether the engine answered the request (it had not crashed before it).
    public var ran: Bool {
        if case .notRun = self { return false }
        return true
    }
}

/// The invariants of SPEC.md §4 and how a violation of one is reported.
/// The invariants of SPEC.md §4, by their report names, in report order.
public enum ViolationKind: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case foreignPfn = "foreign-pfn"
    case refcountUnderflow = "refcount-underflow"
    case leak
    /// The engine's code crashed, hung or made a forbidden system call (isolated C engines).
    case crash
    public var description: String { rawValue }
}

/// An invariant the simulated kernel broke: each has its kind and the facts that show it.
public enum Violation: Equatable, Sendable {
    /// An IOMMU entry maps a pfn that the page tables do not hold at that vaddr: `pages`
    /// foreign pages in one chunk, the first at `iova`/`vaddr` mapping `mapped` where the
    /// page tables hold `held` (nil: nothing mapped there).
    case foreignPfn(iova: IOVA, vaddr: VAddr, mapped: PFN, held: PFN?, pages: UInt64)
    /// `put_pfn()` went below zero references `pages` times in one request (the same frame may
    /// count more than once); the first was `pfn`, and `delta` is the lowest count reached.
    case refcountUnderflow(pfn: PFN, delta: Int64, pages: UInt64)
    /// After teardown, `pages` ram frames still hold a reference delta, the first `pfn` at `delta`.
    case leakedRefs(pfn: PFN, delta: Int64, pages: UInt64)
    /// After teardown, `locked_vm` is not back at its baseline.
    case leakedLockedVM(lockedVM: Int64, baseline: Int64)
    /// After teardown, another page counter (`user->locked_vm`, `mm->pinned_vm`) is not back at
    /// its baseline.
    case leakedCounter(name: String, value: Int64, baseline: Int64)
    /// The engine's process died or hung at this event: what happened, in words.
    case crash(what: String)

    /// The invariant it breaks.
    public var kind: ViolationKind {
        switch self {
        case .foreignPfn: .foreignPfn
        case .refcountUnderflow: .refcountUnderflow
        case .leakedRefs, .leakedLockedVM, .leakedCounter: .leak
        case .crash: .crash
        }
    }

    /// One line describing the violation.
    public var detail: String {
        switch self {
        case let .foreignPfn(iova, vaddr, mapped, held, pages):
            let h = held.map { "pfn \($0)" } ?? "nothing"
            return "iova \(iova) vaddr \(vaddr) maps pfn \(mapped), page tables hold \(h)"
                + (pages > 1 ? " (\(pages) foreign pages in this chunk)" : "")
        case let .refcountUnderflow(pfn, delta, pages):
            return "put_pfn drops pfn \(pfn) below zero references, to \(delta) at worst"
                + (pages > 1 ? " (\(pages) puts below zero)" : "")
        case let .leakedRefs(pfn, delta, pages):
            return "pfn \(pfn) keeps a reference delta of \(delta > 0 ? "+" : "")\(delta)"
                + (pages > 1 ? " (\(pages) pages in all)" : "")
        case let .leakedLockedVM(lockedVM, baseline):
            return "locked_vm is \(lockedVM) pages after teardown, expected \(baseline)"
        case let .leakedCounter(name, value, baseline):
            return "\(name) is \(value) pages after teardown, expected \(baseline)"
        case .crash(let what):
            return what
        }
    }
}

/// A violation with the event it happened at.
public struct EventViolation: Equatable, Sendable {
    /// The event it happened at (past the last for the teardown).
    public var event: Int
    /// What was broken.
    public var violation: Violation
    /// A violation at `event`.
    public init(event: Int, violation: Violation) {
        self.event = event
        self.violation = violation
    }
}

/// A cost counter (SPEC.md §4, SPEC-LATER §6), in report order. The cost model must give each
/// one a weight: its switch over this enum does not compile without one.
public enum Counter: String, CaseIterable, Sendable {
    case vaddr_get_pfn, get_user_pages, gup_pages, follow_pfn, mmap_lock, find_vma, iommu_map, pages_walked
    case faults, put_pfn, unpin_range, unpin_range_pages, iova_to_phys, iommu_unmap, vfio_lock_acct
}

/// Per-engine cost counters (SPEC.md §4), plus the unmap side. World primitives count their
/// own; engines count `pages_walked` and `vaddr_get_pfn`.
public struct CostCounters: Equatable, Sendable {
    /// `vaddr_get_pfn()` calls.
    public var vaddr_get_pfn = 0
    /// `get_user_pages*()` and `pin_user_pages_remote()` calls, failed ones included.
    public var get_user_pages = 0
    /// Pages returned by `pin_user_pages_remote()`.
    public var gup_pages = 0
    /// `follow_pte()` / `follow_pfnmap_start()` calls.
    public var follow_pfn = 0
    /// `mmap_sem` acquisitions, read or write.
    public var mmap_lock = 0
    /// `find_vma()` / `find_vma_intersection()` lookups.
    public var find_vma = 0
    /// `iommu_map()` calls.
    public var iommu_map = 0
    /// Steps of `vfio_pin_pages_remote()`: pages, pfnmap leaves or contiguous groups.
    public var pages_walked = 0
    /// Page faults taken (pool allocations, zero page, COW, unshare, pfnmap leaves).
    public var faults = 0
    /// `put_pfn()` / `unpin_user_page()` calls.
    public var put_pfn = 0
    /// `unpin_user_page_range_dirty_lock()` calls and the pages they covered (6.18).
    public var unpin_range = 0
    /// Pages those range unpins covered.
    public var unpin_range_pages = 0
    /// `iommu_iova_to_phys()` lookups during unmap.
    public var iova_to_phys = 0
    /// `iommu_unmap()` calls.
    public var iommu_unmap = 0
    /// `vfio_lock_acct()` calls that changed `locked_vm`.
    public var vfio_lock_acct = 0

    /// All counters at zero.
    public init() {}

    /// Counters from their values in `Counter.allCases` order (what another process reported).
    public init(_ values: [Int]) {
        for (c, v) in zip(Counter.allCases, values) {
            switch c {
            case .vaddr_get_pfn: vaddr_get_pfn = v
            case .get_user_pages: get_user_pages = v
            case .gup_pages: gup_pages = v
            case .follow_pfn: follow_pfn = v
            case .mmap_lock: mmap_lock = v
            case .find_vma: find_vma = v
            case .iommu_map: iommu_map = v
            case .pages_walked: pages_walked = v
            case .faults: faults = v
            case .put_pfn: put_pfn = v
            case .unpin_range: unpin_range = v
            case .unpin_range_pages: unpin_range_pages = v
            case .iova_to_phys: iova_to_phys = v
            case .iommu_unmap: iommu_unmap = v
            case .vfio_lock_acct: vfio_lock_acct = v
            }
        }
    }

    /// One counter by name.
    public subscript(_ c: Counter) -> Int {
        switch c {
        case .vaddr_get_pfn: vaddr_get_pfn
        case .get_user_pages: get_user_pages
        case .gup_pages: gup_pages
        case .follow_pfn: follow_pfn
        case .mmap_lock: mmap_lock
        case .find_vma: find_vma
        case .iommu_map: iommu_map
        case .pages_walked: pages_walked
        case .faults: faults
        case .put_pfn: put_pfn
        case .unpin_range: unpin_range
        case .unpin_range_pages: unpin_range_pages
        case .iova_to_phys: iova_to_phys
        case .iommu_unmap: iommu_unmap
        case .vfio_lock_acct: vfio_lock_acct
        }
    }

    /// Every counter with its report name, in report order.
    public var named: [(name: String, value: Int)] { Counter.allCases.map { ($0.rawValue, self[$0]) } }
}

import VFIOModel

/// The access a `map` (r|w|rw|-) or `pin` (r|w|rw) asks for, from the device's view.
public struct Access: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The device reads.
    public static let read = Access(rawValue: 1)
    /// The device writes.
    public static let write = Access(rawValue: 2)

    /// `r`, `w`, `rw` or `-`.
    public var keyword: String {
        switch (contains(.read), contains(.write)) {
        case (true, true): "rw"
        case (true, false): "r"
        case (false, true): "w"
        case (false, false): "-"
        }
    }
}

extension VMAFlags {
    /// The flags' keywords in the order SPEC.md §5 and SPEC-LATER §7 list them.
    public static let keywords: [(String, VMAFlags)] = [
        ("io", .io), ("pfnmap", .pfnmap), ("mixedmap", .mixedmap), ("shared", .shared), ("linear", .linear),
        ("hugepage", .hugepage),
    ]
}

/// The size of the leaves a `pte` statement declares, as log2 of bytes: 4K, 2M or 1G.
public enum LeafSize: UInt8, Sendable, CaseIterable {
    case k4 = 12
    case m2 = 21
    case g1 = 30

    /// `4K`, `2M`, `1G`.
    public var keyword: String {
        switch self {
        case .k4: "4K"
        case .m2: "2M"
        case .g1: "1G"
        }
    }
    /// Pages in one leaf.
    public var pages: UInt64 { 1 << UInt64(rawValue - 12) }
}

/// A `vma` statement: the world's VMA it declares, and the name `/proc/PID/maps` gave it. The
/// VMA's fields read through (`spec.start`, `spec.flags`): a trace and the world share one
/// description of a VMA, so replay hands `vma` to the world as it is.
@dynamicMemberLookup
public struct VMASpec: Equatable, Sendable {
    /// The VMA the statement declares.
    public var vma: VMA
    /// Empty when the statement has no `name=`.
    public var name: TraceText

    /// The statement declaring `vma`.
    public init(_ vma: VMA, name: TraceText = "") {
        self.vma = vma
        self.name = name
    }

    /// A VMA from the raw addresses a trace spells.
    public init(
        start: UInt64, end: UInt64, read: Bool = true, write: Bool = true, exec: Bool = false,
        flags: VMAFlags = [], hugetlbSize: UInt64 = 0, pgoff: UInt64 = 0, name: TraceText = ""
    ) {
        self.init(
            VMA(
                start: VAddr(start), end: VAddr(end), read: read, write: write, exec: exec, flags: flags,
                hugetlbSize: hugetlbSize, pgoff: pgoff),
            name: name)
    }

    /// The VMA's fields, read and written through.
    public subscript<T>(dynamicMember field: WritableKeyPath<VMA, T>) -> T {
        get { vma[keyPath: field] }
        set { vma[keyPath: field] = newValue }
    }

    /// `rw-`, `r-x`, ...
    public var perms: String { (vma.read ? "r" : "-") + (vma.write ? "w" : "-") + (vma.exec ? "x" : "-") }
}

/// One statement of a trace (SPEC.md §5). Every statement after the header is an event.
public enum Statement: Equatable, Sendable {
    case pageShift(UInt64)
    /// RLIMIT_MEMLOCK in bytes; nil is `unlimited`.
    case memlock(UInt64?)
    case capIpcLock(Bool)
    case lockedVM(UInt64)
    /// `user_locked_vm PAGES`: what the user (uid) already has charged to its per-user counter,
    /// which only iommufd's native accounting reads.
    case userLockedVM(UInt64)
    case disableHugepages(Bool)
    /// The host's transparent_hugepage `enabled`; default always.
    case thp(THPMode)
    /// The vfio_iommu_type1 `dma_entry_limit` module parameter; initial snapshot only.
    case dmaEntryLimit(UInt64)
    case pfns(PfnClass, start: UInt64, count: UInt64)
    case zeroPage(UInt64)
    case pool(start: UInt64, count: UInt64)
    case vma(VMASpec)
    case munmap(start: UInt64, end: UInt64)
    /// `pte VADDR COUNT PFN [ro] [leaf=SIZE]`; `pfn` nil is `none` (ptes dropped).
    case pte(vaddr: UInt64, count: UInt64, pfn: UInt64?, readOnly: Bool, leaf: LeafSize = .k4)
    case touch(vaddr: UInt64, count: UInt64, write: Bool)
    case map(iova: UInt64, vaddr: UInt64, size: UInt64, access: Access)
    case unmap(iova: UInt64, size: UInt64)
    /// `unmap_all [IOVA SIZE]`: `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL` (5.12 on);
    /// the kernel wants iova and size 0.
    case unmapAll(iova: UInt64, size: UInt64)
    case pin(iova: UInt64, count: UInt64, access: Access)
    case unpin(iova: UInt64, count: UInt64)
    case mark(TraceText)

    /// Whether this statement is a request the engines answer (map, unmap, pin, unpin).
    public var isRequest: Bool {
        switch self {
        case .map, .unmap, .unmapAll, .pin, .unpin: true
        default: false
        }
    }

    /// Every keyword, in the order SPEC.md §5 lists them (`stat` prints in this order; a test
    /// checks it holds the keyword of every case).
    public static let keywords = [
        "page_shift", "memlock", "cap_ipc_lock", "locked_vm", "user_locked_vm", "disable_hugepages", "thp", "dma_entry_limit", "pfns",
        "zero_page", "pool", "vma", "munmap", "pte", "touch", "map", "unmap", "unmap_all", "pin", "unpin", "mark",
    ]

    /// The statement's keyword.
    public var keyword: String {
        switch self {
        case .pageShift: "page_shift"
        case .memlock: "memlock"
        case .capIpcLock: "cap_ipc_lock"
        case .lockedVM: "locked_vm"
        case .userLockedVM: "user_locked_vm"
        case .disableHugepages: "disable_hugepages"
        case .thp: "thp"
        case .dmaEntryLimit: "dma_entry_limit"
        case .pfns: "pfns"
        case .zeroPage: "zero_page"
        case .pool: "pool"
        case .vma: "vma"
        case .munmap: "munmap"
        case .pte: "pte"
        case .touch: "touch"
        case .map: "map"
        case .unmap: "unmap"
        case .unmapAll: "unmap_all"
        case .pin: "pin"
        case .unpin: "unpin"
        case .mark: "mark"
        }
    }

    /// The canonical text form (SPEC.md §5): addresses, pfns and sizes in lower-case hex,
    /// counts in decimal, one space between fields, flags in canonical order.
    public var canonicalText: String {
        switch self {
        case .pageShift(let s): return "page_shift \(s)"
        case .memlock(let b): return "memlock " + (b.map(hex) ?? "unlimited")
        case .capIpcLock(let y): return "cap_ipc_lock " + (y ? "yes" : "no")
        case .lockedVM(let n): return "locked_vm \(n)"
        case .userLockedVM(let n): return "user_locked_vm \(n)"
        case .disableHugepages(let y): return "disable_hugepages " + (y ? "yes" : "no")
        case .thp(let t): return "thp \(t)"
        case .dmaEntryLimit(let n): return "dma_entry_limit \(n)"
        case let .pfns(kind, start, count): return "pfns \(kind) \(hex(start)) \(count)"
        case .zeroPage(let pfn): return "zero_page \(hex(pfn))"
        case let .pool(start, count): return "pool \(hex(start)) \(count)"
        case .vma(let v):
            var s = "vma \(v.start) \(v.end) \(v.perms)"
            for (word, flag) in VMAFlags.keywords where v.flags.contains(flag) { s += " " + word }
            if v.hugetlbSize != 0 { s += " hugetlb=" + hex(v.hugetlbSize) }
            if v.pgoff != 0 { s += " pgoff=" + hex(v.pgoff) }
            if !v.name.isEmpty { s += " name=" + escapeTraceText(v.name.string) }
            return s
        case let .munmap(start, end): return "munmap \(hex(start)) \(hex(end))"
        case let .pte(vaddr, count, pfn, ro, leaf):
            return "pte \(hex(vaddr)) \(count) " + (pfn.map(hex) ?? "none") + (ro ? " ro" : "")
                + (leaf == .k4 ? "" : " leaf=" + leaf.keyword)
        case let .touch(vaddr, count, write): return "touch \(hex(vaddr)) \(count) " + (write ? "w" : "r")
        case let .map(iova, vaddr, size, access):
            return "map \(hex(iova)) \(hex(vaddr)) \(hex(size)) \(access.keyword)"
        case let .unmap(iova, size): return "unmap \(hex(iova)) \(hex(size))"
        case let .unmapAll(iova, size): return "unmap_all" + (iova == 0 && size == 0 ? "" : " \(hex(iova)) \(hex(size))")
        case let .pin(iova, count, access): return "pin \(hex(iova)) \(count) \(access.keyword)"
        case let .unpin(iova, count): return "unpin \(hex(iova)) \(count)"
        case .mark(let text): return "mark " + escapeTraceText(text.string)
        }
    }
}

extension Statement {
    /// The pages a statement asks the simulation to walk one by one: a map's size in pages
    /// (rounded up), a pin's or a touch's count; nil for everything else.
    public var pagesAsked: UInt64? {
        switch self {
        case let .map(_, _, size, _): size >> 12 + (size & 0xfff == 0 ? 0 : 1)
        case let .pin(_, count, _), let .touch(_, count, _): count
        default: nil
        }
    }
}

/// `0x` + lower-case hex.
@inlinable
public func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// The first line of every text trace.
public let textHeader = "vptr-text 1"

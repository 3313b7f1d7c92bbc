/// VMA flags the simulation distinguishes (a subset of the kernel's `vm_flags`).
public struct VMAFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// `VM_IO`: device memory; GUP refuses it.
    @inlinable public static var io: VMAFlags { VMAFlags(rawValue: 1 << 0) }
    /// `VM_PFNMAP`: raw pfns without struct page semantics; GUP refuses it.
    @inlinable public static var pfnmap: VMAFlags { VMAFlags(rawValue: 1 << 1) }
    /// `VM_MIXEDMAP`: struct pages and raw pfns mixed; GUP works where a page exists.
    @inlinable public static var mixedmap: VMAFlags { VMAFlags(rawValue: 1 << 2) }
    /// `VM_SHARED`.
    @inlinable public static var shared: VMAFlags { VMAFlags(rawValue: 1 << 3) }
    /// The driver maps `pgoff + (vaddr - start) / PAGE_SIZE` on fault (vfio-pci BAR mmaps).
    @inlinable public static var linear: VMAFlags { VMAFlags(rawValue: 1 << 4) }
    /// `VM_HUGEPAGE` (MADV_HUGEPAGE): lets `thp madvise` hosts install huge pfnmap leaves.
    @inlinable public static var hugepage: VMAFlags { VMAFlags(rawValue: 1 << 5) }
}

/// A virtual memory area, `[start, end)`, as declared by a trace (VMAs are never merged).
/// Plain data, no name: the walk copies VMAs, and the world never needs a name.
public struct VMA: Equatable, Sendable {
    /// First address (`vm_start`).
    public var start: VAddr
    /// Address just past the area (`vm_end`).
    public var end: VAddr
    /// `VM_READ`.
    public var read: Bool
    /// `VM_WRITE`.
    public var write: Bool
    /// `VM_EXEC`.
    public var exec: Bool
    /// The `VM_*` flags that matter to pinning.
    public var flags: VMAFlags
    /// Huge page size in bytes for hugetlbfs VMAs, 0 otherwise.
    public var hugetlbSize: UInt64
    /// `vm_pgoff`, in pages.
    public var pgoff: UInt64
    /// vfio-pci of 5.8 to 6.9 filled this VMA at its first fault and put it on its `vma_list`:
    /// later faults in it install nothing (SPEC-LATER §2.5, D13). A split keeps it; a new VMA
    /// starts without it.
    public var populated = false

    /// A VMA over `[start, end)`; anonymous private read-write unless said otherwise.
    public init(
        start: VAddr, end: VAddr, read: Bool = true, write: Bool = true, exec: Bool = false,
        flags: VMAFlags = [], hugetlbSize: UInt64 = 0, pgoff: UInt64 = 0
    ) {
        self.start = start
        self.end = end
        self.read = read
        self.write = write
        self.exec = exec
        self.flags = flags
        self.hugetlbSize = hugetlbSize
        self.pgoff = pgoff
    }

    /// "Anonymous private": none of io, pfnmap, mixedmap, shared, hugetlb (SPEC.md §2).
    public var isAnonPrivate: Bool {
        flags.isDisjoint(with: [.io, .pfnmap, .mixedmap, .shared]) && hugetlbSize == 0
    }
    /// Backed by hugetlbfs.
    public var isHugetlb: Bool { hugetlbSize != 0 }
    /// Whether `vaddr` lies in `[start, end)`.
    public func contains(_ vaddr: VAddr) -> Bool { start <= vaddr && vaddr < end }
}

/// The kernel's `vma_pages()`: the size of the whole VMA in pages, not what lies past a vaddr.
@inlinable
public func vma_pages(_ vma: VMA) -> Int { Int((vma.end - vma.start) >> PAGE_SHIFT) }

/// A page-table entry run value: the frame, whether the pte is writable, the size of the leaf
/// it belongs to, and whether its page is an exclusive anonymous copy made by an unshare.
public struct Pte: RunValue, Sendable {
    /// The frame the entry maps.
    public var pfn: PFN
    /// Whether the entry allows writes (a read-only one faults on write).
    public var writable: Bool
    /// log2 of the leaf size: 12 (a pte), 21 (a PMD leaf) or 30 (a PUD leaf). Huge leaves exist
    /// only in io/pfnmap VMAs; a leaf starts at a vaddr aligned to its size.
    public var leafShift: UInt8
    /// The page was made by a FAULT_FLAG_UNSHARE copy (SPEC-LATER §2.2): a write fault reuses
    /// it in place.
    public var exclusive: Bool
    /// An entry mapping `pfn`.
    @inlinable public init(pfn: PFN, writable: Bool, leafShift: UInt8 = 12, exclusive: Bool = false) {
        self.pfn = pfn
        self.writable = writable
        self.leafShift = leafShift
        self.exclusive = exclusive
    }
    /// The entry `offset` pages further on: the next frame, the same bits.
    @inlinable public func advanced(by offset: UInt64) -> Pte {
        Pte(pfn: PFN(pfn.rawValue &+ offset), writable: writable, leafShift: leafShift, exclusive: exclusive)
    }
    /// Pages in the leaf.
    @inlinable public var leafPages: UInt64 { 1 << UInt64(leafShift - 12) }
}

/// A process address space (`struct mm_struct`): VMAs and run-length page tables keyed by
/// virtual page number. A class, as engines hold `mm` while the host faults pages into it.
public final class MM {
    /// Sorted by start, non-overlapping (the kernel's maple tree).
    private var vmaTree = Chunked<VMA>()
    /// The VMAs in address order (a copy: O(n)).
    public var vmas: [VMA] { vmaTree.elements }
    /// Page-table entries by virtual page number.
    public private(set) var ptes = RunMap<Pte>()
    /// The pte run the last lookup found (cut to start at the key looked up); cleared whenever
    /// the page tables change.
    private var lastRun: Run<Pte>?
    /// Pages charged by `vfio_lock_acct()`; signed so that a buggy engine's underflow shows.
    public var locked_vm: Int64 = 0
    /// `mm->pinned_vm`: pages pinned long-term through iommufd, whatever was charged.
    public var pinned_vm: Int64 = 0
    /// The VMA the last lookup found: a page-by-page walk asks about the same one again and
    /// again. Cleared whenever the VMAs change.
    @usableFromInline var lastFound: VMA?
    /// Whether a huge leaf was ever installed: until then no edge can cut one.
    private var hasHugeLeaves = false
    /// Moves whenever a VMA or a pte changes: what a cached lookup checks.
    public private(set) var generation: UInt64 = 0

    /// An address space with no VMAs.
    public init() {}

    /// The first VMA intersecting `[start, end)`, as the kernel's `find_vma_intersection()`.
    @inlinable
    public func findVMAIntersection(_ start: VAddr, _ end: VAddr) -> VMA? {
        // A VMA holding start is the first to intersect: VMAs are disjoint and sorted.
        if let v = lastFound, v.start <= start, start < v.end { return v }
        return findVMASlow(start, end)
    }

    @usableFromInline
    func findVMASlow(_ start: VAddr, _ end: VAddr) -> VMA? {
        let i = vmaTree.partitioningIndex { $0.end > start }
        guard i != vmaTree.endIndex, vmaTree[i].start < end else { return nil }
        lastFound = vmaTree[i]
        return vmaTree[i]
    }

    /// `mmap(MAP_FIXED)`: whatever was mapped in the range goes, then the new VMA.
    public func mmap(_ vma: VMA) {
        generation &+= 1
        munmap(vma.start, vma.end)
        lastFound = nil
        vmaTree.insert(vma, at: vmaTree.partitioningIndex { $0.end > vma.start })
    }

    /// `munmap()`: VMAs are cut at the edges (the right part's pgoff shifts), ptes dropped.
    public func munmap(_ start: VAddr, _ end: VAddr) {
        guard start < end else { return }
        generation &+= 1
        lastFound = nil
        var kept: [VMA] = []
        let first = vmaTree.partitioningIndex { $0.end > start }
        var i = first
        while i != vmaTree.endIndex, vmaTree[i].start < end {
            let v = vmaTree[i]
            if v.start < start {
                var left = v
                left.end = start
                kept.append(left)
            }
            if v.end > end {
                var right = v
                right.start = end
                right.pgoff = v.pgoff &+ ((end - v.start) >> PAGE_SHIFT)
                kept.append(right)
            }
            i = vmaTree.index(after: i)
        }
        var at = vmaTree.removeSubrange(first, i)
        for v in kept {
            // Two steps: in one expression, index(after:) would read the tree as it was before.
            let placed = vmaTree.insert(v, at: at)
            at = vmaTree.index(after: placed)
        }
        setPtes(start.vpn, (end - start) >> PAGE_SHIFT, nil)
    }

    /// Marks the VMA holding `vaddr` as populated by vfio-pci's whole-VMA fault.
    public func markPopulated(_ vaddr: VAddr) {
        let i = vmaTree.partitioningIndex { $0.end > vaddr }
        guard i != vmaTree.endIndex, vmaTree[i].start <= vaddr else { return }
        var v = vmaTree[i]
        v.populated = true
        generation &+= 1
        lastFound = nil
        vmaTree.insert(v, at: vmaTree.remove(at: i))
    }

    /// The pte at virtual page `vpn`, if present.
    public func pte(at vpn: UInt64) -> Pte? {
        if let r = lastRun, r.start <= vpn, vpn < r.end { return r.value.advanced(by: vpn - r.start) }
        guard let r = ptes.run(at: vpn) else { return nil }
        lastRun = r
        return r.value
    }

    /// Sets (or with nil drops) `count` ptes from virtual page `vpn`. A huge leaf that the
    /// range cuts is removed whole first, as splitting a special huge pmd zaps it.
    public func setPtes(_ vpn: UInt64, _ count: UInt64, _ pte: Pte?) {
        lastRun = nil
        generation &+= 1
        guard count > 0 else { return }
        if hasHugeLeaves {
            dropLeaf(at: vpn)
            dropLeaf(at: vpn + count - 1)
        }
        if let pte, pte.leafShift > 12 { hasHugeLeaves = true }
        ptes.assign(vpn, count, pte)
    }

    /// Drops the huge leaf that holds `vpn`, if it is one.
    private func dropLeaf(at vpn: UInt64) {
        if let r = ptes.run(at: vpn), r.value.leafShift > 12 {
            let n = r.value.leafPages
            ptes.assign(vpn & ~(n - 1), n, nil)
        }
    }

    /// Whether any pte is present in `[vpn, vpn + count)`.
    public func anyPte(_ vpn: UInt64, _ count: UInt64) -> Bool {
        guard let k = ptes.nextCovered(from: vpn) else { return false }
        return k < vpn + count
    }

    /// Whether every page of `[start, start + npages)` lies inside some VMA.
    public func isCovered(_ start: VAddr, npages: UInt64) -> Bool {
        var at = start
        let end = start + npages << PAGE_SHIFT
        while at < end {
            guard let v = findVMAIntersection(at, at + PAGE_SIZE), v.start <= at else { return false }
            at = v.end
        }
        return true
    }
}

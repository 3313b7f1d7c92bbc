// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The mm primitives an engine calls, under the kernel's names, with the fault rules of SPEC.md §2.

/// An error in what a trace asks of the world (a pte outside any VMA, a touch that would
/// SIGSEGV): the trace is inconsistent, not the engine.
public struct WorldError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The simulated host one engine runs on: physical memory, the one process (`current`), the
/// vfio type1 container, the module parameters, the cost counters and invariant checks.
///
/// Every engine gets its own `Host` built from the same trace, so engines never see each
/// other's side effects.
public final class Host {
    /// The engine whose `vfio_pin_pages_remote()` this host's container calls.
    public let engine: any PinEngine
    public var phys = PhysMem()
    /// The one process's address space; it issues every request.
    public let mm = MM()
    /// `current->mm`: never nil here, as every request comes from the live process.
    public var current_mm: MM? { mm }
    /// RLIMIT_MEMLOCK in bytes; nil is unlimited (`RLIM_INFINITY`).
    public var memlock: UInt64? = nil
    /// `capable(CAP_IPC_LOCK)`.
    public var cap_ipc_lock = false
    /// The vfio_iommu_type1 module parameter.
    public var disable_hugepages = false
    /// The container: one IOMMU domain, one mdev domain.
    public var iommu = VFIOIommu()
    public var counters = CostCounters()
    /// The `locked_vm` the leak check expects after teardown.
    public private(set) var lockedVMBaseline: Int64 = 0
    /// The event being replayed, for violations.
    public var event = 0
    /// References taken on ram pages less references dropped, over the whole run: two engines
    /// that answer a request alike but move this differently diverge in page references.
    public private(set) var ramRefsNet: Int64 = 0

    var violations: [EventViolation] = []
    /// Chunks passed to `iommu_map()` by the request being replayed.
    var mapChunks: [Chunk] = []

    public init(engine: any PinEngine) {
        self.engine = engine
    }

    // MARK: - Process limits

    /// `rlimit(RLIMIT_MEMLOCK)` in bytes.
    public func rlimit_memlock() -> UInt64 { memlock ?? UInt64.max }

    /// A `locked_vm` statement: sets the counter and moves the leak baseline by as much.
    public func setLockedVM(_ pages: Int64) {
        lockedVMBaseline &+= pages &- mm.locked_vm
        mm.locked_vm = pages
    }

    // MARK: - Locks and VMA lookup

    /// `down_read(&mm->mmap_sem)`; counted, since each acquisition costs.
    @inlinable public func down_read(_ mm: MM) { counters.mmap_lock += 1 }
    @inlinable public func up_read(_ mm: MM) {}
    /// `down_write_killable(&mm->mmap_sem)`; never interrupted here.
    @inlinable public func down_write(_ mm: MM) { counters.mmap_lock += 1 }
    @inlinable public func up_write(_ mm: MM) {}

    /// `find_vma_intersection(mm, start, end)`.
    @inlinable
    public func find_vma_intersection(_ mm: MM, _ start: VAddr, _ end: VAddr) -> VMA? {
        counters.find_vma += 1
        return mm.findVMAIntersection(start, end)
    }

    // MARK: - Frames

    /// `is_invalid_reserved_pfn()`: true for mmio (no struct page) and PageReserved frames.
    @inlinable
    public func is_invalid_reserved_pfn(_ pfn: PFN) -> Bool { phys.pfnClassCached(pfn) != .ram }

    /// `put_pfn()`: drops the reference of a non-reserved page (marking it dirty for a
    /// writable mapping) and returns 1; reserved and mmio frames are skipped, returning 0.
    public func put_pfn(_ pfn: PFN, _ prot: Prot) -> Int {
        counters.put_pfn += 1
        guard !is_invalid_reserved_pfn(pfn) else { return 0 }
        ramRefsNet -= 1
        phys.addRef(pfn, -1)
        return 1
    }

    /// Takes a reference on a frame that has a struct page (ram or reserved), as GUP does.
    func get_page(_ pfn: PFN) {
        let cls = phys.pfnClassCached(pfn)
        if cls == .mmio { return }
        if cls == .ram { ramRefsNet += 1 }
        phys.addRef(pfn, 1)
    }

    // MARK: - GUP and faults

    /// `get_user_pages*()` for one page at `vaddr`, with or without `FOLL_WRITE`: faults the page
    /// in as needed and takes a reference. Returns 1 with `page` set, or -errno.
    @inlinable
    public func get_user_pages(_ mm: MM, _ vaddr: VAddr, write: Bool, _ page: inout PFN) -> Int {
        counters.get_user_pages += 1
        guard let vma = mm.findVMAIntersection(vaddr, vaddr + 1) else { return -EFAULT }
        // check_vma_flags(): raw pfn mappings and missing permissions refuse GUP.
        if !vma.flags.isDisjoint(with: [.io, .pfnmap]) { return -EFAULT }
        if write ? !vma.write : !vma.read { return -EFAULT }
        return follow_page(vma, vaddr, write: write, &page)
    }

    /// GUP past the VMA checks: fault the page in as needed, take a reference.
    @usableFromInline
    func follow_page(_ vma: VMA, _ vaddr: VAddr, write: Bool, _ page: inout PFN) -> Int {
        let pfn: PFN
        switch handle_fault(vma, vaddr, write: write) {
        case .success(let p): pfn = p
        case .failure(let e): return -e.errno
        }
        // follow_page: a present pte without a struct page is not a page GUP can return.
        if phys.pfnClassCached(pfn) == .mmio { return -EFAULT }
        get_page(pfn)
        page = pfn
        return 1
    }

    /// A positive errno carried through `Result`.
    public struct Errno: Error, Equatable { public var errno: Int }

    /// Makes the pte at `vaddr` present (and writable for a write) under the fault rules of
    /// SPEC.md §2 and returns the frame it then maps. The VMA's permissions are the caller's
    /// business; raw pfn VMAs fault only `linear` pages in (the vfio-pci fault handler).
    func handle_fault(_ vma: VMA, _ vaddr: VAddr, write: Bool) -> Result<PFN, Errno> {
        let vpn = vaddr.vpn
        if let pte = mm.pte(at: vpn) {
            if !write || pte.writable { return .success(pte.pfn) }
            counters.faults += 1
            if vma.flags.contains(.shared) {
                // A shared mapping has no copy to make: the pte just becomes writable.
                setPteRange(vma, vaddr, pfn: pte.pfn, writable: true)
                return .success(pte.pfn)
            }
            if vma.flags.contains(.pfnmap) || vma.flags.contains(.io) {
                return .failure(Errno(errno: EFAULT))
            }
            return cowFault(vma, vaddr)
        }
        counters.faults += 1
        if !vma.flags.isDisjoint(with: [.io, .pfnmap]) {
            guard vma.flags.contains(.linear) else { return .failure(Errno(errno: EFAULT)) }
            let pfn = PFN(vma.pgoff &+ ((vaddr - vma.start) >> PAGE_SHIFT))
            mm.setPtes(vpn, 1, Pte(pfn: pfn, writable: vma.write))
            return .success(pfn)
        }
        if vma.isHugetlb { return cowFault(vma, vaddr) }
        if vma.isAnonPrivate && !write, let zero = phys.zeroPfn {
            // A read fault on anonymous memory maps the shared zero page, always read-only.
            mm.setPtes(vpn, 1, Pte(pfn: zero, writable: false))
            return .success(zero)
        }
        guard let pfn = phys.allocPage() else { return .failure(Errno(errno: ENOMEM)) }
        mm.setPtes(vpn, 1, Pte(pfn: pfn, writable: vma.write))
        return .success(pfn)
    }

    /// A fresh pool page (a fresh aligned block for the whole huge page in hugetlb) mapped
    /// writable at `vaddr`: a missing hugetlb page, or a private copy-on-write.
    private func cowFault(_ vma: VMA, _ vaddr: VAddr) -> Result<PFN, Errno> {
        if vma.isHugetlb {
            let npages = vma.hugetlbSize >> PAGE_SHIFT
            guard let block = phys.allocAligned(npages: npages) else {
                return .failure(Errno(errno: EFAULT))
            }
            let hstart = VAddr(vaddr.rawValue & ~(vma.hugetlbSize - 1))
            mm.setPtes(hstart.vpn, npages, Pte(pfn: block, writable: vma.write))
            return .success(block + Int((vaddr - hstart) >> PAGE_SHIFT))
        }
        guard let pfn = phys.allocPage() else { return .failure(Errno(errno: ENOMEM)) }
        mm.setPtes(vaddr.vpn, 1, Pte(pfn: pfn, writable: true))
        return .success(pfn)
    }

    /// Makes the pte (the whole huge page in hugetlb) map `pfn` with the given writability.
    private func setPteRange(_ vma: VMA, _ vaddr: VAddr, pfn: PFN, writable: Bool) {
        if vma.isHugetlb {
            let hstart = VAddr(vaddr.rawValue & ~(vma.hugetlbSize - 1))
            let base = pfn + -Int((vaddr - hstart) >> PAGE_SHIFT)
            mm.setPtes(hstart.vpn, vma.hugetlbSize >> PAGE_SHIFT, Pte(pfn: base, writable: writable))
        } else {
            mm.setPtes(vaddr.vpn, 1, Pte(pfn: pfn, writable: writable))
        }
    }

    /// `follow_pfn()` (Linux 5.7 on): the pfn the pte of a raw pfn VMA holds, or -EINVAL.
    /// For engines after 4.16, which stopped trusting `vm_pgoff`.
    public func follow_pfn(_ vma: VMA, _ vaddr: VAddr, _ pfn: inout PFN) -> Int {
        counters.follow_pfn += 1
        guard !vma.flags.isDisjoint(with: [.io, .pfnmap]), let pte = mm.pte(at: vaddr.vpn) else {
            return -EINVAL
        }
        pfn = pte.pfn
        return 0
    }

    // MARK: - World statements

    /// `pte VADDR COUNT PFN [ro]` / `pte VADDR COUNT none`: sets or drops ptes; the range must
    /// lie inside VMAs.
    public func setPtes(_ vaddr: VAddr, count: UInt64, pfn: PFN?, writable: Bool) throws(WorldError) {
        guard mm.isCovered(vaddr, npages: count) else {
            throw WorldError("pte range \(vaddr)+\(count) pages is not inside a VMA")
        }
        mm.setPtes(vaddr.vpn, count, pfn.map { Pte(pfn: $0, writable: writable) })
    }

    /// `touch VADDR COUNT r|w`: the process touches the pages, faulting them in as the CPU
    /// would (no page references taken). A touch the kernel would answer with SIGSEGV or
    /// SIGBUS is an inconsistent trace.
    public func touch(_ vaddr: VAddr, count: UInt64, write: Bool) throws(WorldError) {
        var at = vaddr
        for _ in 0..<count {
            guard let vma = mm.findVMAIntersection(at, at + 1) else {
                throw WorldError("touch at \(at): no VMA there (SIGSEGV)")
            }
            if write ? !vma.write : !vma.read {
                throw WorldError("touch at \(at): VMA does not allow \(write ? "writes" : "reads") (SIGSEGV)")
            }
            if case .failure(let e) = handle_fault(vma, at, write: write) {
                throw WorldError("touch at \(at): fault fails with -\(errnoName(e.errno))")
            }
            at += PAGE_SIZE
        }
    }

    // MARK: - Invariants

    /// Records a violation at the current event.
    func record(_ v: Violation) {
        violations.append(EventViolation(event: event, violation: v))
    }

    /// Records the reference underflows `put_pfn()` caused since the last look, as one violation.
    func recordUnderflow() {
        if let u = phys.takeUnderflow() {
            record(.refcountUnderflow(pfn: u.pfn, delta: u.delta, pages: u.pages))
        }
    }

    /// Takes the violations recorded since the last call, folding this event's page-by-page
    /// underflows into one report.
    public func takeViolations() -> [EventViolation] {
        recordUnderflow()
        if violations.isEmpty { return [] }
        defer { violations = [] }
        return violations
    }

    /// foreign-pfn: checks that the IOMMU entries `[iova, pfn, npage]` for the process range
    /// at `vaddr` map what the page tables hold there (for a `linear` raw pfn page without a
    /// pte: `pgoff` + offset).
    func checkForeign(_ iova: IOVA, _ vaddr: VAddr, _ pfn: PFN, _ npage: UInt64) {
        var first: (iova: IOVA, vaddr: VAddr, mapped: PFN, held: PFN?)?
        var foreign: UInt64 = 0
        forEachHeld(vaddr, npage) { off, n, held in
            let mapped = pfn + Int(off)
            if let held, held == mapped { return }
            if first == nil {
                first = (iova + off << PAGE_SHIFT, vaddr + off << PAGE_SHIFT, mapped, held)
            }
            // Held and mapped pfns both advance by one per page: a run matches whole or not at all.
            foreign += n
        }
        if let first {
            record(.foreignPfn(iova: first.iova, vaddr: first.vaddr, mapped: first.mapped, held: first.held, pages: foreign))
        }
    }

    /// What the page tables hold for `npage` pages from `vaddr`, as runs: page offset, length,
    /// first held pfn (nil where nothing is mapped).
    func forEachHeld(_ vaddr: VAddr, _ npage: UInt64, _ body: (UInt64, UInt64, PFN?) -> Void) {
        mm.ptes.forEachSegment(from: vaddr.vpn, count: npage) { vpn, n, pte in
            let off = vpn - vaddr.vpn
            if let pte {
                body(off, n, pte.pfn)
                return
            }
            // Gaps in a linear raw pfn VMA hold what its fault handler would map.
            var at = vpn
            let end = vpn + n
            while at < end {
                let va = VAddr(at << PAGE_SHIFT)
                guard let vma = mm.findVMAIntersection(va, VAddr(end << PAGE_SHIFT)) else {
                    body(at - vaddr.vpn, end - at, nil)
                    return
                }
                if vma.start.vpn > at {
                    body(at - vaddr.vpn, vma.start.vpn - at, nil)
                    at = vma.start.vpn
                }
                let segEnd = min(end, vma.end.vpn)
                if vma.flags.contains(.linear) && !vma.flags.isDisjoint(with: [.io, .pfnmap]) {
                    body(at - vaddr.vpn, segEnd - at, PFN(vma.pgoff &+ (at - vma.start.vpn)))
                } else {
                    body(at - vaddr.vpn, segEnd - at, nil)
                }
                at = segEnd
            }
        }
    }
}

// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The mm primitives an engine calls, under the kernel's names, with the fault rules of SPEC.md §2.

/// An error in what a trace asks of the world (a pte outside any VMA, a touch that would
/// SIGSEGV): the trace is inconsistent, not the engine.
public struct WorldError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var message: String
    /// An error saying `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The host's transparent_hugepage `enabled` setting: whether vfio-pci may install huge
/// pfnmap leaves (SPEC-LATER §2.5).
public enum THPMode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    // The raw values are the binary trace form's (docs/FORMAT.md).
    case always = 0
    case madvise = 1
    case never = 2

    /// The keyword a trace (and sysfs) spells the setting with.
    public var description: String {
        switch self {
        case .always: "always"
        case .madvise: "madvise"
        case .never: "never"
        }
    }
}

/// The simulated host one engine runs on: physical memory, the one process (`current`), the
/// vfio type1 container, the module parameters, the cost counters and invariant checks.
///
/// Every engine gets its own `Host` built from the same trace, so engines never see each
/// other's side effects.
public final class Host {
    /// The engine this host answers requests for.
    public let engine: any Engine
    /// The engine's pinning functions, when it is a type1 engine: what the type1 container calls.
    let type1Engine: (any PinEngine)?
    /// What answers the requests: the type1 container, or the engine's own backend.
    public private(set) lazy var backend: any DMABackend = engine.makeBackend(self)
    /// The engine's kernel: what faults, `touch` and the container do (SPEC-LATER §1).
    public let profile: EngineProfile
    /// The host's transparent_hugepage `enabled` setting (`thp`).
    public var thp: THPMode = .always
    /// Physical memory: frame classes, the pool, page references.
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
    /// What this host's engine has cost so far.
    public var counters = CostCounters()
    /// The `locked_vm` the leak check expects after teardown.
    public private(set) var lockedVMBaseline: Int64 = 0
    /// `current_user()->locked_vm`: pages charged to the process's uid (iommufd's native
    /// accounting), other processes' included.
    public var user_locked_vm: Int64 = 0
    /// The `user_locked_vm` the leak check expects after teardown.
    public private(set) var userLockedVMBaseline: Int64 = 0
    /// The event being replayed, for violations.
    public var event = 0
    /// References taken on ram pages less references dropped, over the whole run: two engines
    /// that answer a request alike but move this differently diverge in page references.
    public var ramRefsNet: Int64 { _ramRefsNet }
    @usableFromInline var _ramRefsNet: Int64 = 0

    var violations: [EventViolation] = []
    /// Chunks passed to `iommu_map()` by the request being replayed (a backend empties it when
    /// a map request starts).
    public internal(set) var mapChunks: [Chunk] = []

    /// A host built for `engine`: its profile sets the world's rules.
    public init(engine: any Engine) {
        self.engine = engine
        self.type1Engine = engine as? any PinEngine
        self.profile = engine.profile
    }

    // MARK: - Process limits

    /// `rlimit(RLIMIT_MEMLOCK)` in bytes.
    public func rlimit_memlock() -> UInt64 { memlock ?? UInt64.max }

    /// A `locked_vm` statement: sets the counter and moves the leak baseline by as much.
    public func setLockedVM(_ pages: Int64) {
        lockedVMBaseline &+= pages &- mm.locked_vm
        mm.locked_vm = pages
    }

    /// The counter the engine charges pinned pages to, which its outcomes report as
    /// `locked_vm`: `mm->locked_vm`, or for iommufd's native accounting `user->locked_vm`.
    public var charged: Int64 { engine.lockedVMCounter == .user ? user_locked_vm : mm.locked_vm }

    /// Takes on the state an engine reached in another process (an isolated C engine's
    /// worker): what the replay reads of a host after each statement.
    public func mirror(
        counters: CostCounters, ramRefs: Int64, lockedVM: Int64, userLockedVM: Int64, pinnedVM: Int64, violations: [Violation]
    ) {
        self.counters = counters
        _ramRefsNet = ramRefs
        mm.locked_vm = lockedVM
        user_locked_vm = userLockedVM
        mm.pinned_vm = pinnedVM
        for v in violations { record(v) }
    }

    /// Records that the engine's process crashed or hung at the current event.
    public func recordCrash(_ what: String) { record(.crash(what: what)) }

    /// A `user_locked_vm` statement: sets the user's counter and moves its leak baseline.
    public func setUserLockedVM(_ pages: Int64) {
        userLockedVMBaseline &+= pages &- user_locked_vm
        user_locked_vm = pages
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
        dropRef(pfn, .ram)  // the class is known: one lookup a page
        return 1
    }

    /// Drops one reference of a frame of class `cls`.
    @inline(__always) private func dropRef(_ pfn: PFN, _ cls: PfnClass) {
        if cls == .mmio { return }
        if cls == .ram { _ramRefsNet -= 1 }
        phys.addRef(pfn, -1)
    }

    /// `put_page()` (or `unpin_user_page()`, the same here) of `n` consecutive frames, a class
    /// stretch at a time: what a C engine's gathered puts come to; one frame at a time it is
    /// `dropRef()`.
    public func drop_refs(_ pfn: PFN, _ n: UInt64) {
        var p = pfn.rawValue
        let end = p &+ n
        while p < end {
            let stretch = phys.classStretch(p)
            let k = min(stretch.end, end) &- p
            if stretch.cls != .mmio {
                if stretch.cls == .ram { _ramRefsNet -= Int64(k) }
                phys.addRefs(PFN(p), k, -1)
            }
            p &+= k
        }
    }

    /// Takes a reference on a frame that has a struct page (ram or reserved), as GUP does.
    func get_page(_ pfn: PFN) {
        let cls = phys.pfnClassCached(pfn)
        if cls == .mmio { return }
        if cls == .ram { _ramRefsNet += 1 }
        phys.addRef(pfn, 1)
    }

    // MARK: - GUP and faults

    /// The pte at `vaddr` as the MMU sees it: the zero page is read-only in every pte, whatever
    /// the trace said (SPEC.md §2), judged now, since a `zero_page` line may come later.
    @inlinable
    public func pte(_ vaddr: VAddr) -> Pte? {
        guard var pte = mm.pte(at: vaddr.vpn) else { return nil }
        if pte.writable, let zero = phys.zeroPfn, pte.pfn == zero { pte.writable = false }
        return pte
    }

    /// `get_user_pages*()` for one page at `vaddr`, with or without `FOLL_WRITE`: faults the page
    /// in as needed and takes a reference. Returns 1 with `page` set, or -errno.
    @inlinable
    public func get_user_pages(_ mm: MM, _ vaddr: VAddr, write: Bool, _ page: inout PFN) -> Int {
        counters.get_user_pages += 1
        return gupOne(mm, vaddr, write: write, longterm: false, &page)
    }

    /// `pin_user_pages_remote(mm, vaddr, nr_pages, FOLL_LONGTERM | write, pages)` (5.x on):
    /// resolves page after page as the one-page GUP does, crossing VMAs freely, and stops at the
    /// first page it cannot pin. Returns how many it pinned (pages[0..<n], one pin reference
    /// each), or that first page's -errno when none.
    @inlinable
    public func pin_user_pages_remote(_ mm: MM, _ vaddr: VAddr, _ nr_pages: Int, write: Bool, _ pages: inout [PFN]) -> Int {
        pages.withUnsafeMutableBufferPointer { pin_user_pages_remote(mm, vaddr, min(nr_pages, $0.count), write: write, $0.baseAddress!) }
    }

    /// `pin_user_pages_remote()` into `nr_pages` slots at `pages` (a C engine's buffer).
    @inlinable
    public func pin_user_pages_remote(_ mm: MM, _ vaddr: VAddr, _ nr_pages: Int, write: Bool, _ pages: UnsafeMutablePointer<PFN>)
        -> Int
    {
        counters.get_user_pages += 1
        var i = 0
        var ret = 0
        var at = vaddr
        while i < nr_pages {
            var page: PFN = 0
            let r = gupOne(mm, at, write: write, longterm: true, &page)
            if r != 1 {
                ret = r
                break
            }
            pages[i] = page
            i += 1
            at += PAGE_SIZE
        }
        counters.gup_pages += i
        return i > 0 ? i : ret
    }

    /// Where the last GUP of a ram page left off: the pages after it, up to `end`, lie in the
    /// same VMA, the same present pte run (writable, if `write`) and the same class stretch of
    /// ram, so GUP of the next one needs no lookup and no fault. Valid while neither the
    /// address space nor the frame classes change (their generations).
    @usableFromInline var gupNext: (vpn: UInt64, end: UInt64, pfn: PFN, write: Bool, mmGen: UInt64, physGen: UInt64) =
        (0, 0, 0, false, 0, 0)

    /// The run the last GUP left open for `write`: the next `end - vpn` pages from page `vpn`
    /// would be pinned as `pfn`, `pfn + 1`, ... without a lookup or a fault (nil: none). A C
    /// engine serves those GUPs itself and takes them with `gup_run_take()`.
    public func gup_run(write: Bool) -> (vpn: UInt64, end: UInt64, pfn: PFN)? {
        let n = gupNext
        guard n.vpn < n.end, n.write == write, n.mmGen == mm.generation, n.physGen == phys.generation else { return nil }
        return (n.vpn, n.end, n.pfn)
    }

    /// `n` GUPs of the open run at once: the counts, references and advance of `n` one-page
    /// GUPs on its fast path.
    public func gup_run_take(_ n: Int) {
        let run = gupNext
        counters.get_user_pages += n
        _ramRefsNet += Int64(n)
        phys.addRefs(run.pfn, UInt64(n), 1)
        gupNext.vpn = run.vpn + UInt64(n)
        gupNext.pfn = run.pfn + n
    }

    /// One page of GUP: the VMA checks of `check_vma_flags()`, the fault, the unshare of a
    /// read-only long-term pin (SPEC-LATER §2.2), the reference.
    @inlinable
    func gupOne(_ mm: MM, _ vaddr: VAddr, write: Bool, longterm: Bool, _ page: inout PFN) -> Int {
        let n = gupNext
        let vpn = vaddr.vpn
        if vpn == n.vpn && vpn < n.end && write == n.write && n.mmGen == mm.generation && n.physGen == phys.generation {
            // The walk's common case: the next page of a run GUP just went through.
            _ramRefsNet += 1
            phys.addRef(n.pfn, 1)
            page = n.pfn
            gupNext.vpn = vpn + 1
            gupNext.pfn = n.pfn + 1
            return 1
        }
        guard let vma = mm.findVMAIntersection(vaddr, vaddr + 1) else { return -EFAULT }
        // check_vma_flags(): raw pfn mappings and missing permissions refuse GUP.
        if !vma.flags.isDisjoint(with: [.io, .pfnmap]) { return -EFAULT }
        if write ? !vma.write : !vma.read { return -EFAULT }
        return gupFollow(mm, vma, vaddr, write: write, longterm: longterm, &page)
    }

    /// GUP past the VMA checks: fault the page in as needed, unshare, take a reference.
    @usableFromInline
    func gupFollow(_ mm: MM, _ vma: VMA, _ vaddr: VAddr, write: Bool, longterm: Bool, _ page: inout PFN) -> Int {
        var pfn: PFN
        switch handle_fault(vma, vaddr, write: write) {
        case .success(let p): pfn = p
        case .failure(let e): return -e
        }
        // follow_page: a present pte without a struct page is not a page GUP can return.
        let cls = phys.pfnClassCached(pfn)
        if cls == .mmio { return -EFAULT }
        if longterm && !write && gup_must_unshare(vma, vaddr, cls) {
            switch unshare(vma, vaddr) {
            case .success(let p): pfn = p
            case .failure(let e): return -e
            }
        } else if longterm && profile.unshareRO && pfn == phys.zeroPfn {
            // 6.5 on: the zero page is never pinned (c8070b787519).
            page = pfn
            return 1
        }
        get_page(pfn)
        page = pfn
        if cls == .ram, let run = mm.ptes.run(at: vaddr.vpn), run.value.pfn == pfn, !write || run.value.writable {
            // Remember how far the next pages are as this one: same VMA, pte run, class stretch.
            var len = min(vma.end.vpn - vaddr.vpn, run.count, phys.finger.end &- pfn.rawValue)
            if let z = phys.zeroPfn, z >= pfn, z.rawValue - pfn.rawValue < len { len = z.rawValue - pfn.rawValue }
            gupNext = (vaddr.vpn + 1, vaddr.vpn + len, pfn + 1, write, mm.generation, phys.generation)
        }
        return 1
    }

    /// `gup_must_unshare()` for a read-only long-term pin of the page GUP just resolved: in a
    /// private VMA, under a read-only pte, a page that may be shared. An anonymous one (a `ram`
    /// pfn in an anonymous or hugetlb VMA that the world did not make exclusive itself) from
    /// 5.19; any page that is not anonymous (the zero page, a reserved page, a driver's page in
    /// a mixedmap VMA) from 6.2 (SPEC-LATER §2.2; the world has no file pages, D-9).
    @usableFromInline
    func gup_must_unshare(_ vma: VMA, _ vaddr: VAddr, _ cls: PfnClass) -> Bool {
        guard profile.unshareAnon || profile.unshareRO, !vma.flags.contains(.shared),
            let pte = pte(vaddr), !pte.writable
        else { return false }
        let anon = cls == .ram && (vma.isAnonPrivate || vma.isHugetlb)
        if anon { return profile.unshareAnon && !pte.exclusive }
        return profile.unshareRO
    }

    /// FAULT_FLAG_UNSHARE: a fresh pool page (hugetlb: a fresh aligned block for the whole huge
    /// page) mapped read-only in place of the old pte, an exclusive anonymous page.
    private func unshare(_ vma: VMA, _ vaddr: VAddr) -> Result<PFN, KErrno> {
        counters.faults += 1
        return freshPage(vma, vaddr) { Pte(pfn: $0, writable: false, exclusive: true) }
    }

    /// Makes the pte at `vaddr` present (and writable for a write) under the fault rules of
    /// SPEC.md §2 and returns the frame it then maps. The VMA's permissions are the caller's
    /// business; raw pfn VMAs fault only `linear` pages in (the vfio-pci fault handler, whose
    /// generation the profile picks).
    func handle_fault(_ vma: VMA, _ vaddr: VAddr, write: Bool) -> Result<PFN, KErrno> {
        let vpn = vaddr.vpn
        if let pte = pte(vaddr) {
            if !write || pte.writable { return .success(pte.pfn) }
            counters.faults += 1
            if vma.flags.contains(.shared) {
                // A shared mapping has no copy to make: the pte just becomes writable.
                setPteRange(vma, vaddr, pfn: pte.pfn, writable: true)
                return .success(pte.pfn)
            }
            if pte.exclusive {
                // do_wp_page() reuses an exclusive anonymous page in place.
                setPteRange(vma, vaddr, pfn: pte.pfn, writable: true)
                return .success(pte.pfn)
            }
            // wp_page_copy(), in any private VMA, io/pfnmap ones included.
            return cowFault(vma, vaddr)
        }
        if !vma.flags.isDisjoint(with: [.io, .pfnmap]) {
            guard vma.flags.contains(.linear) else { return .failure(.EFAULT) }
            counters.faults += 1
            return .success(pfnmapFault(vma, vaddr))
        }
        counters.faults += 1
        if vma.isHugetlb { return cowFault(vma, vaddr) }
        if vma.isAnonPrivate && !write, let zero = phys.zeroPfn {
            // A read fault on anonymous memory maps the shared zero page, always read-only.
            mm.setPtes(vpn, 1, Pte(pfn: zero, writable: false))
            return .success(zero)
        }
        guard let pfn = phys.allocPage() else { return .failure(.ENOMEM) }
        // A fresh anonymous page is exclusive to this process; a driver's page is not.
        mm.setPtes(vpn, 1, Pte(pfn: pfn, writable: vma.write, exclusive: vma.isAnonPrivate))
        return .success(pfn)
    }

    /// The pfn a `linear` raw pfn VMA (a vfio-pci BAR mmap) holds at `vaddr`.
    @inlinable
    public func linearPfn(_ vma: VMA, _ vaddr: VAddr) -> PFN {
        PFN(vma.pgoff &+ ((vaddr - vma.start) >> PAGE_SHIFT))
    }

    /// vfio-pci's fault handler of the engine's generation (SPEC-LATER §2.5): one pte, the
    /// whole VMA, or one leaf as large as alignment, the VMA, the pfn and THP allow.
    private func pfnmapFault(_ vma: VMA, _ vaddr: VAddr) -> PFN {
        let pfn = linearPfn(vma, vaddr)
        switch profile.pfnmapFaults {
        case .onePte:
            mm.setPtes(vaddr.vpn, 1, Pte(pfn: pfn, writable: vma.write))
        case .wholeVMA:
            // Only the first fault fills the VMA (ptes already present stay); once the VMA is on
            // vfio-pci's vma_list a fault installs nothing (VM_FAULT_NOPAGE).
            if vma.populated { return pfn }
            mm.markPopulated(vma.start)
            var gaps: [(UInt64, UInt64)] = []
            mm.ptes.forEachSegment(from: vma.start.vpn, count: UInt64(vma_pages(vma))) { vpn, n, pte in
                if pte == nil { gaps.append((vpn, n)) }
            }
            for (vpn, n) in gaps {
                mm.setPtes(vpn, n, Pte(pfn: linearPfn(vma, VAddr(vpn << PAGE_SHIFT)), writable: vma.write))
            }
        case .leaf:
            let hugeAllowed = thp == .always || (thp == .madvise && vma.flags.contains(.hugepage))
            for shift: UInt8 in [30, 21] where hugeAllowed {
                let size = UInt64(1) << UInt64(shift)
                let b = VAddr(vaddr.rawValue & ~(size - 1))
                let npages = size >> PAGE_SHIFT
                guard vma.start <= b, vma.end.rawValue >= b.rawValue, vma.end - b >= size,
                    linearPfn(vma, b).rawValue & (npages - 1) == 0, !mm.anyPte(b.vpn, npages)
                else { continue }
                mm.setPtes(b.vpn, npages, Pte(pfn: linearPfn(vma, b), writable: vma.write, leafShift: shift))
                return pfn
            }
            mm.setPtes(vaddr.vpn, 1, Pte(pfn: pfn, writable: vma.write))
        }
        return pfn
    }

    /// A fresh pool page (a fresh aligned block for the whole huge page in hugetlb) mapped
    /// writable at `vaddr`: a missing hugetlb page, or a private copy-on-write.
    private func cowFault(_ vma: VMA, _ vaddr: VAddr) -> Result<PFN, KErrno> {
        // A 4 KiB copy is writable whatever the VMA says; a hugetlb block as the VMA allows.
        // Either is an anonymous page of this process alone.
        freshPage(vma, vaddr) { Pte(pfn: $0, writable: vma.isHugetlb ? vma.write : true, exclusive: true) }
    }

    /// Takes a fresh pool page, or in hugetlb a fresh aligned block for the whole huge page
    /// (pool exhausted: -ENOMEM, hugetlb -EFAULT), maps it at `vaddr` with the pte `make` gives
    /// for its first frame, and returns the frame at `vaddr`.
    private func freshPage(_ vma: VMA, _ vaddr: VAddr, _ make: (PFN) -> Pte) -> Result<PFN, KErrno> {
        if vma.isHugetlb {
            let npages = vma.hugetlbSize >> PAGE_SHIFT
            guard let block = phys.allocAligned(npages: npages) else { return .failure(.EFAULT) }
            let hstart = VAddr(vaddr.rawValue & ~(vma.hugetlbSize - 1))
            mm.setPtes(hstart.vpn, npages, make(block))
            return .success(block + Int((vaddr - hstart) >> PAGE_SHIFT))
        }
        guard let pfn = phys.allocPage() else { return .failure(.ENOMEM) }
        mm.setPtes(vaddr.vpn, 1, make(pfn))
        return .success(pfn)
    }

    /// Makes the pte (the whole huge page in hugetlb) map `pfn` writable, keeping what it was.
    private func setPteRange(_ vma: VMA, _ vaddr: VAddr, pfn: PFN, writable: Bool) {
        guard let old = mm.pte(at: vaddr.vpn) else { return }
        var new = old
        new.writable = writable
        if vma.isHugetlb {
            let hstart = VAddr(vaddr.rawValue & ~(vma.hugetlbSize - 1))
            new.pfn = pfn + -Int((vaddr - hstart) >> PAGE_SHIFT)
            mm.setPtes(hstart.vpn, vma.hugetlbSize >> PAGE_SHIFT, new)
        } else if old.leafShift > 12 {
            let n = old.leafPages
            let lstart = vaddr.vpn & ~(n - 1)
            new.pfn = pfn + -Int(vaddr.vpn - lstart)
            mm.setPtes(lstart, n, new)
        } else {
            mm.setPtes(vaddr.vpn, 1, new)
        }
    }

    /// What `follow_pte()` (5.x) and `follow_pfnmap_start()` (6.12 on) report of a present pte:
    /// the pfn at the address, its writability, and the mask of the leaf that holds it.
    public struct PfnmapArgs: Sendable {
        /// The frame found.
        public var pfn: PFN
        /// Whether its entry allows writes.
        public var writable: Bool
        /// `~(leaf size - 1)`.
        public var addr_mask: UInt64
    }

    /// `follow_pfnmap_start()` (6.12 on): the present pte of an io/pfnmap VMA at `vaddr`, or nil.
    public func follow_pfnmap_start(_ vma: VMA, _ vaddr: VAddr) -> PfnmapArgs? {
        follow_pfnmap_start(flags: vma.flags, vaddr)
    }

    /// `follow_pfnmap_start()` given only the VMA's flags (a C engine holds its VMA already).
    public func follow_pfnmap_start(flags: VMAFlags, _ vaddr: VAddr) -> PfnmapArgs? {
        counters.follow_pfn += 1
        guard !flags.isDisjoint(with: [.io, .pfnmap]), let pte = pte(vaddr) else { return nil }
        return PfnmapArgs(pfn: pte.pfn, writable: pte.writable, addr_mask: ~((UInt64(1) << UInt64(pte.leafShift)) - 1))
    }

    /// `follow_pte()` (5.10 to 6.9): the same walk, but it follows 4 KiB ptes only: a pte that
    /// is part of a 2 MiB or 1 GiB leaf is not followed (SPEC-LATER §2.4, D12; 5.15's
    /// follow_invalidate_pte() fails -EINVAL on a huge pmd or pud).
    public func follow_pte(_ vma: VMA, _ vaddr: VAddr) -> PfnmapArgs? {
        guard let args = follow_pfnmap_start(vma, vaddr), args.addr_mask == ~(PAGE_SIZE - 1) else { return nil }
        return args
    }

    /// `fixup_user_fault(mm, vaddr, FAULT_FLAG_REMOTE | write)`: the VMA must allow the access,
    /// then the fault rules (a `linear` raw pfn VMA faults as vfio-pci does, any other has no
    /// handler). 0, or -errno; never -EAGAIN here.
    public func fixup_user_fault(_ mm: MM, _ vaddr: VAddr, write: Bool) -> Int {
        guard let vma = mm.findVMAIntersection(vaddr, vaddr + 1) else { return -EFAULT }
        if write ? !vma.write : !vma.read { return -EFAULT }
        if case .failure(let e) = handle_fault(vma, vaddr, write: write) { return -e }
        return 0
    }

    /// `vma_lookup()`: the VMA holding `vaddr`.
    @inlinable
    public func vma_lookup(_ mm: MM, _ vaddr: VAddr) -> VMA? {
        counters.find_vma += 1
        return mm.findVMAIntersection(vaddr, vaddr + 1)
    }

    /// `is_zero_pfn()`.
    @inlinable
    public func is_zero_pfn(_ pfn: PFN) -> Bool { phys.zeroPfn == pfn }

    /// `pfn_valid()`: the frame has a struct page.
    @inlinable
    public func pfn_valid(_ pfn: PFN) -> Bool { phys.pfnClassCached(pfn) != .mmio }

    /// `unpin_user_page()`: drops the pin reference GUP took, whatever the page's class.
    public func unpin_user_page(_ pfn: PFN) {
        dropRef(pfn, phys.pfnClassCached(pfn))
    }

    /// `unpin_user_page_range_dirty_lock()` (6.18's range unpin): one reference off each of
    /// `npage` consecutive frames that has a struct page, reserved ones included (it never
    /// looks at PageReserved); the zero page is skipped, as it was never pinned.
    public func unpin_user_page_range_dirty_lock(_ pfn: PFN, _ npage: Int, _ prot: Prot) {
        counters.unpin_range += 1
        counters.unpin_range_pages += npage
        var p = pfn
        for _ in 0..<npage {
            if !is_zero_pfn(p) { unpin_user_page(p) }
            p += 1
        }
    }

    /// `num_pages_contiguous()` (6.18): the length of the longest prefix of
    /// `pages[offset..<offset + size]` whose frames follow one another (at least 1). The
    /// memory-section break of SPARSEMEM without VMEMMAP never fires here.
    @inlinable
    public func num_pages_contiguous(_ pages: [PFN], _ offset: Int, _ size: Int) -> Int {
        let first = pages[offset].rawValue
        var i = 1
        while i < size && pages[offset + i].rawValue == first &+ UInt64(i) { i += 1 }
        return i
    }

    /// How many consecutive frames from `pfn`, at most `max`, are invalid or reserved: a range
    /// form of `is_invalid_reserved_pfn()`, answered per class segment.
    public func invalid_reserved_pfns(from pfn: PFN, max: Int) -> Int {
        var n: UInt64 = 0
        while n < UInt64(max) {
            let stretch = phys.classStretch(pfn.rawValue &+ n)
            if stretch.cls == .ram { break }
            n += Swift.min(stretch.end &- (pfn.rawValue &+ n), UInt64(max) - n)
        }
        return Int(n)
    }

    // MARK: - World statements

    /// `pte VADDR COUNT PFN [ro] [leaf=SIZE]`: sets ptes, inside VMAs (huge leaves: inside one
    /// io/pfnmap VMA). `pte VADDR COUNT none` drops whatever ptes the range holds; where no
    /// VMA is, that is nothing.
    public func setPtes(_ vaddr: VAddr, count: UInt64, pfn: PFN?, writable: Bool, leafShift: UInt8 = 12) throws(WorldError) {
        guard let pfn else {
            mm.setPtes(vaddr.vpn, count, nil)
            return
        }
        guard mm.isCovered(vaddr, npages: count) else {
            throw WorldError("pte range \(vaddr)+\(count) pages is not inside a VMA")
        }
        if leafShift > 12 {
            guard let vma = mm.findVMAIntersection(vaddr, vaddr + 1), !vma.flags.isDisjoint(with: [.io, .pfnmap]),
                vma.end.vpn - vaddr.vpn >= count
            else {
                throw WorldError("pte range \(vaddr)+\(count) pages with a huge leaf is not inside one io/pfnmap VMA")
            }
        }
        mm.setPtes(vaddr.vpn, count, Pte(pfn: pfn, writable: writable, leafShift: leafShift))
    }

    /// `touch VADDR COUNT r|w`: the process touches the pages, faulting them in as the CPU
    /// would (no page references taken). Where Linux would deliver SIGSEGV or SIGBUS, or the
    /// fault fails, nothing happens to that page: never an input error, so that whether a
    /// trace is accepted never depends on the engines.
    public func touch(_ vaddr: VAddr, count: UInt64, write: Bool) {
        var at = vaddr
        let end = vaddr + count << PAGE_SHIFT
        while at < end {
            guard let vma = mm.findVMAIntersection(at, end) else { return }
            if vma.start > at { at = vma.start }
            let stop = min(end, vma.end)
            guard write ? vma.write : vma.read else {
                at = stop
                continue
            }
            while at < stop {
                _ = handle_fault(vma, at, write: write)
                at += PAGE_SIZE
            }
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

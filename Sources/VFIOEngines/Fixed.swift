// swift-format-ignore-file: AlwaysUseLowerCamelCase

// `fixed`: what a correct 2018 shortcut would have been (SPEC-LATER §4.1). Linux 4.16 with one
// change: when vaddr_get_pfn() took its VM_PFNMAP branch (never for a page GUP returned,
// reserved or not), the run is extended to the end of *that* VMA in one step, over the pfns
// that are invalid or reserved, after the disable_hugepages check; then 4.16's walk goes on.
//
// Why it equals 4.16 on every outcome: for every page u past v in that VMA, 4.16's
// vaddr_get_pfn() fails GUP (a pfnmap VMA), finds the same VMA, computes pfn + (u - v) (so the
// run stays contiguous), and returns it iff it is invalid/reserved (the run's rsvd, so no
// charge); it stops at the first other pfn or at vm_end. pfnmap_extent() answers the same
// question per class segment instead of per page. Only the counters differ: one step per VMA.
//
// Deviations from the kernel: as v4.16. A kernel version would need a range form of
// is_invalid_reserved_pfn() (pfn_valid() per memory section); the world answers it directly.
import VFIOModel

/// v4.16 plus a correct shortcut: one step per VM_PFNMAP VMA remainder.
public struct Fixed: PinEngine {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "fixed" }
    public var aliases: [String] { [] }
    public var summary: String { "v4.16 plus a correct shortcut: one step per VM_PFNMAP VMA remainder" }
    public var kernels: String { "no kernel: what 356e88ebe447 should have been (must equal v4.16)" }
    public var profile: EngineProfile { .v4_16 }

    /// 4.16's vaddr_get_pfn(), which also reports the VMA when the pfn came from its
    /// VM_PFNMAP branch (nil otherwise).
    public func vaddr_get_pfn(_ k: Host, _ mm: MM, _ vaddr: VAddr, _ prot: Prot, _ pfn: inout PFN, _ pvma: inout VMA?) -> Int {
        k.counters.vaddr_get_pfn += 1
        pvma = nil
        var page: PFN = 0
        var ret = k.get_user_pages(mm, vaddr, write: prot.contains(.IOMMU_WRITE), &page)
        if ret == 1 {
            pfn = page
            return 0
        }

        k.down_read(mm)
        if let vma = k.find_vma_intersection(mm, vaddr, vaddr + 1), vma.flags.contains(.pfnmap) {
            pfn = PFN(((vaddr - vma.start) >> PAGE_SHIFT) &+ vma.pgoff)
            if k.is_invalid_reserved_pfn(pfn) {
                ret = 0
                pvma = vma
            }
        }
        k.up_read(mm)
        return ret
    }

    /// Pages after `v`, at most `max`, that 4.16's walk would accept one by one: inside `vma`,
    /// with invalid/reserved pfns following `pfn`.
    func pfnmap_extent(_ k: Host, _ vma: VMA, _ v: VAddr, _ pfn: PFN, _ max: Int) -> Int {
        let inVMA = Int((vma.end - v) >> PAGE_SHIFT) - 1
        let limit = min(max, inVMA)
        if limit <= 0 { return 0 }
        return k.invalid_reserved_pfns(from: pfn + 1, max: limit)
    }

    enum Exit { case out, unpinOut }

    /// `vfio_pin_pages_remote()` of the fixed shortcut: pins a run of pages and returns how many.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int {
        let lock_cap = dma.lock_cap
        var vaddr = vaddr
        var pfn: PFN = 0
        var ret = 0
        var pinned = 0
        var lock_acct = 0
        let rsvd: Bool
        var iova = dma.iova + (vaddr - dma.vaddr)
        var pvma: VMA?

        // This code path is only user initiated
        guard let mm = k.current_mm else { return -ENODEV }

        k.counters.pages_walked += 1
        ret = vaddr_get_pfn(k, mm, vaddr, dma.prot, &pfn_base, &pvma)
        if ret != 0 { return ret }

        pinned += 1
        rsvd = k.is_invalid_reserved_pfn(pfn_base)

        // Reserved pages aren't counted against the user, externally pinned pages are already
        // counted against the user.
        if !rsvd && k.vfio_find_vpfn(dma, iova) == nil {
            if !lock_cap && UInt64(bitPattern: mm.locked_vm) &+ 1 > limit {
                _ = k.put_pfn(pfn_base, dma.prot)
                return -ENOMEM  // pr_warn("RLIMIT_MEMLOCK exceeded")
            }
            lock_acct += 1
        }

        var exit = Exit.out
        body: do {
            if k.disable_hugepages { break body }  // goto out

            // The shortcut: the rest of this VM_PFNMAP VMA in one step.
            if let vma = pvma {
                let n = pfnmap_extent(k, vma, vaddr, pfn_base, npage - pinned)
                pinned += n
                vaddr += UInt64(n) << PAGE_SHIFT
                iova += UInt64(n) << PAGE_SHIFT
            }

            // Lock all the consecutive pages from pfn_base
            vaddr += PAGE_SIZE
            iova += PAGE_SIZE
            while pinned < npage {
                k.counters.pages_walked += 1
                ret = vaddr_get_pfn(k, mm, vaddr, dma.prot, &pfn, &pvma)
                if ret != 0 { break }  // swallowed: out: overwrites ret

                if pfn != pfn_base + pinned || rsvd != k.is_invalid_reserved_pfn(pfn) {
                    _ = k.put_pfn(pfn, dma.prot)
                    break
                }

                if !rsvd && k.vfio_find_vpfn(dma, iova) == nil {
                    if !lock_cap && UInt64(bitPattern: mm.locked_vm) &+ UInt64(lock_acct) &+ 1 > limit {
                        _ = k.put_pfn(pfn, dma.prot)
                        ret = -ENOMEM  // pr_warn("RLIMIT_MEMLOCK exceeded")
                        exit = .unpinOut
                        break body
                    }
                    lock_acct += 1
                }
                pinned += 1

                if let vma = pvma {
                    let n = pfnmap_extent(k, vma, vaddr, pfn, npage - pinned)
                    pinned += n
                    vaddr += UInt64(n) << PAGE_SHIFT
                    iova += UInt64(n) << PAGE_SHIFT
                }
                vaddr += PAGE_SIZE
                iova += PAGE_SIZE
            }
        }

        if exit == .out {
            // out:
            ret = k.vfio_lock_acct(lock_acct, lock_cap)
        }

        // unpin_out:
        if ret != 0 {
            if !rsvd {
                var pfn = pfn_base
                while pinned > 0 {
                    _ = k.put_pfn(pfn, dma.prot)
                    pfn += 1
                    pinned -= 1
                }
            }
            return ret
        }

        return pinned
    }

    /// As 4.16's.
    public func vfio_pin_page_external(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        V4_16().vfio_pin_page_external(k, dma, vaddr, &pfn_base, do_accounting)
    }
}

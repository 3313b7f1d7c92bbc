// swift-format-ignore-file: AlwaysUseLowerCamelCase

// Linux 4.17-rc1, commit 356e88ebe447 "vfio/type1: Improve memory pinning process for raw PFN
// mapping" (RFC v2 = Alex Williamson's proposal in the seed thread), reverted before 4.17 for
// a "bad page state" regression (merge 7172a69c1046). After the first vaddr_get_pfn(), an
// invalid or reserved pfn returns min(npage, vma_pages(vma)) at once; rsvd is gone from the
// walk, so reserved pfns can join a run and be charged, and the unwind puts every page.
//
// Deviations from the kernel: as v4.16 (vaddr_get_pfn() is 4.16's, unchanged by the patch).
import VFIOModel

/// The final patch: a reserved first pfn returns `min(npage, vma_pages(vma))`; no `rsvd` in
/// the walk.
public struct V4_17_rc1: SinglePageEngine {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "v4.17-rc1" }
    public var aliases: [String] { ["patched"] }
    public var summary: String { "356e88ebe447: reserved first pfn returns min(npage, vma_pages); reverted" }
    public var kernels: String { "4.17-rc1 to -rc7 only (reverted before 4.17)" }

    /// Unchanged from 4.16.
    public func vaddr_get_pfn(_ k: Host, _ mm: MM, _ vaddr: VAddr, _ prot: Prot, _ pfn: inout PFN) -> Int {
        V4_16().vaddr_get_pfn(k, mm, vaddr, prot, &pfn)
    }

    enum Exit { case out, unpinOut }

    func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN,
        _ lock_cap: Bool, _ limit: UInt64
    ) -> Int {
        var vaddr = vaddr
        var pfn: PFN = 0
        var ret = 0
        var pinned = 0
        var lock_acct = 0
        var iova = dma.iova + (vaddr - dma.vaddr)

        // This code path is only user initiated
        guard let mm = k.current_mm else { return -ENODEV }

        k.counters.pages_walked += 1
        ret = vaddr_get_pfn(k, mm, vaddr, dma.prot, &pfn_base)
        if ret != 0 { return ret }

        if k.is_invalid_reserved_pfn(pfn_base) {
            k.down_read(mm)
            // vaddr_get_pfn() just resolved vaddr, so a VMA is there.
            guard let vma = k.find_vma_intersection(mm, vaddr, vaddr + 1) else {
                preconditionFailure("no VMA at \(vaddr) right after vaddr_get_pfn() succeeded")
            }
            pinned = min(npage, vma_pages(vma))  // the whole VMA, not what lies past vaddr
            k.up_read(mm)
            return pinned
        }

        pinned += 1

        // Reserved pages aren't counted against the user, externally pinned pages are already
        // counted against the user.
        if k.vfio_find_vpfn(dma, iova) == nil {
            if !lock_cap && UInt64(bitPattern: mm.locked_vm) &+ 1 > limit {
                _ = k.put_pfn(pfn_base, dma.prot)
                return -ENOMEM  // pr_warn("RLIMIT_MEMLOCK exceeded")
            }
            lock_acct += 1
        }

        var exit = Exit.out
        body: do {
            if k.disable_hugepages { break body }  // goto out

            // Lock all the consecutive pages from pfn_base
            vaddr += PAGE_SIZE
            iova += PAGE_SIZE
            while pinned < npage {
                k.counters.pages_walked += 1
                ret = vaddr_get_pfn(k, mm, vaddr, dma.prot, &pfn)
                if ret != 0 { break }

                if pfn != pfn_base + pinned {
                    _ = k.put_pfn(pfn, dma.prot)
                    break
                }

                if k.vfio_find_vpfn(dma, iova) == nil {
                    if !lock_cap && UInt64(bitPattern: mm.locked_vm) &+ UInt64(lock_acct) &+ 1 > limit {
                        _ = k.put_pfn(pfn, dma.prot)
                        ret = -ENOMEM  // pr_warn("RLIMIT_MEMLOCK exceeded")
                        exit = .unpinOut
                        break body
                    }
                    lock_acct += 1
                }
                pinned += 1
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
            var pfn = pfn_base
            while pinned > 0 {
                _ = k.put_pfn(pfn, dma.prot)
                pfn += 1
                pinned -= 1
            }
            return ret
        }

        return pinned
    }
}

// swift-format-ignore-file: AlwaysUseLowerCamelCase

// Linux 4.16, drivers/vfio/vfio_iommu_type1.c (blob 45657e2b1ff7): vaddr_get_pfn() and
// vfio_pin_pages_remote(), the page-by-page walk the seed patch short-cuts.
//
// Deviations from the kernel:
// - only the current mm exists, so vaddr_get_pfn() always takes the get_user_pages_longterm()
//   branch; 4.16 calls it without mmap_sem held, so no lock acquisition is counted for it;
// - fs-dax (-EOPNOTSUPP) is not modelled; pr_warn() prints nothing.
import VFIOModel

/// Mainline before the patch: page-by-page walk, `rsvd` decided by the first pfn, a break on a
/// non-contiguous pfn or an `rsvd` mismatch, unwind on error.
public struct V4_16: SinglePageEngine {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "v4.16" }
    public var aliases: [String] { ["old"] }
    public var summary: String { "mainline before the patch: page-by-page walk, rsvd from the first pfn" }
    public var kernels: String { "4.16 and before (4.x up to 5.11 pin the same way)" }

    /// `vaddr_get_pfn()` of 4.16: the frame behind one user address.
    public func vaddr_get_pfn(_ k: Host, _ mm: MM, _ vaddr: VAddr, _ prot: Prot, _ pfn: inout PFN) -> Int {
        k.counters.vaddr_get_pfn += 1
        var page: PFN = 0
        var ret = k.get_user_pages(mm, vaddr, write: prot.contains(.IOMMU_WRITE), &page)
        if ret == 1 {
            pfn = page
            return 0
        }

        k.down_read(mm)
        if let vma = k.find_vma_intersection(mm, vaddr, vaddr + 1), vma.flags.contains(.pfnmap) {
            // Linear arithmetic on vm_pgoff, no page-table walk: right for vfio-pci BARs,
            // wrong for a driver that maps scattered pfns (fixed in 5.7 with follow_pfn()).
            pfn = PFN(((vaddr - vma.start) >> PAGE_SHIFT) &+ vma.pgoff)
            if k.is_invalid_reserved_pfn(pfn) { ret = 0 }
        }
        k.up_read(mm)
        return ret
    }

    /// Where the kernel function leaves through its labels.
    enum Exit { case out, unpinOut }

    /// `vfio_pin_pages_remote()` of 4.16: pins a run of pages and returns how many.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN,
        _ lock_cap: Bool, _ limit: UInt64
    ) -> Int {
        var vaddr = vaddr
        var pfn: PFN = 0
        var ret = 0
        var pinned = 0
        var lock_acct = 0
        let rsvd: Bool
        var iova = dma.iova + (vaddr - dma.vaddr)

        // This code path is only user initiated
        guard let mm = k.current_mm else { return -ENODEV }

        k.counters.pages_walked += 1
        ret = vaddr_get_pfn(k, mm, vaddr, dma.prot, &pfn_base)
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

            // Lock all the consecutive pages from pfn_base
            vaddr += PAGE_SIZE
            iova += PAGE_SIZE
            while pinned < npage {
                k.counters.pages_walked += 1
                ret = vaddr_get_pfn(k, mm, vaddr, dma.prot, &pfn)
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
}

// swift-format-ignore-file: AlwaysUseLowerCamelCase

// Linux 6.15 (stands for 6.15 to 6.17), drivers/vfio/vfio_iommu_type1.c: vaddr_get_pfns()
// fills the batch itself and, for a VM_PFNMAP VMA, returns how many pages remain in the leaf
// that holds vaddr (follow_fault_pfn() reports the leaf's addr_mask: 0fd06844de5d); the loop
// steps over a pfnmap leaf at once (eb996eec783c); a GUP returning 0 becomes -EFAULT
// (afe84f3b7a26); disable_hugepages is npage = 1 up front.
//
// Only the leaf's first examined pfn is checked with is_invalid_reserved_pfn(): a leaf whose
// other pfns are ram is mapped whole, and its unmap put_pfn()s them (D10, world-only, since
// vfio-pci never maps RAM).
//
// Deviations from the kernel: as v5.15.
import VFIOModel

/// The refill of 6.15 on: fills the batch; a pfnmap answers a whole leaf with the batch empty.
protocol LeafRefill {
    func vaddr_get_pfns(
        _ k: Host, _ mm: MM, _ vaddr: VAddr, _ npages: Int, _ prot: Prot, _ pfn: inout PFN, _ batch: inout VFIOBatch
    ) -> Int
}

/// Pfnmap leaves in one step each.
public struct V6_15: PinEngine, LeafRefill {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "v6.15" }
    public var aliases: [String] { [] }
    public var summary: String { "pfnmap leaves (4K/2M/1G) in one step each; first pfn of a leaf checked only" }
    public var kernels: String { "6.15 to 6.17" }
    public var profile: EngineProfile { .v6_12 }

    func follow_fault_pfn(
        _ k: Host, _ vma: VMA, _ mm: MM, _ vaddr: VAddr, _ pfn: inout PFN, _ addr_mask: inout UInt64, _ write_fault: Bool
    ) -> Int {
        var args = k.follow_pfnmap_start(vma, vaddr)
        if args == nil {
            let ret = k.fixup_user_fault(mm, vaddr, write: write_fault)
            if ret != 0 { return ret }
            args = k.follow_pfnmap_start(vma, vaddr)
        }
        guard let args else { return -EINVAL }
        if write_fault && !args.writable { return -EFAULT }
        pfn = args.pfn
        addr_mask = args.addr_mask
        return 0  // follow_pfnmap_end()
    }

    func vaddr_get_pfns(
        _ k: Host, _ mm: MM, _ vaddr: VAddr, _ npages: Int, _ prot: Prot, _ pfn: inout PFN, _ batch: inout VFIOBatch
    ) -> Int {
        k.counters.vaddr_get_pfn += 1
        let pin_pages = min(npages, batch.capacity)
        k.down_read(mm)  // mmap_read_lock()
        defer { k.up_read(mm) }
        var ret = k.pin_user_pages_remote(mm, vaddr, pin_pages, write: prot.contains(.IOMMU_WRITE), &batch.pages)
        if ret > 0 {
            pfn = batch.pages[0]
            batch.size = ret
            batch.offset = 0
            return ret
        } else if ret == 0 {
            ret = -EFAULT
        }

        if let vma = k.vma_lookup(mm, vaddr), vma.flags.contains(.pfnmap) {
            var addr_mask: UInt64 = 0
            ret = follow_fault_pfn(k, vma, mm, vaddr, &pfn, &addr_mask, prot.contains(.IOMMU_WRITE))
            if ret == 0 {
                if k.is_invalid_reserved_pfn(pfn) {
                    let epfn = (pfn.rawValue | (~addr_mask >> PAGE_SHIFT)) &+ 1
                    ret = Int(min(UInt64(npages), epfn &- pfn.rawValue))
                } else {
                    ret = -EFAULT
                }
            }
        }
        return ret
    }

    enum Exit { case out, unpinOut }

    /// `vfio_pin_pages_remote()` of 6.15: pins a run of pages and returns how many.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int {
        var vaddr = vaddr
        var npage = npage
        var pfn: PFN = 0
        var ret = 0
        var pinned = 0
        var lock_acct = 0
        var rsvd = false
        var iova = dma.iova + (vaddr - dma.vaddr)

        // This code path is only user initiated
        guard let mm = k.current_mm else { return -ENODEV }

        if batch.size > 0 {
            // Leftover pages in batch from an earlier call.
            pfn_base = batch.pages[batch.offset]
            pfn = pfn_base
            rsvd = k.walk_is_invalid_reserved_pfn(pfn_base)
        } else {
            pfn_base = 0
        }

        if k.disable_hugepages { npage = 1 }

        var exit = Exit.out
        body: while npage > 0 {
            if batch.size == 0 {
                // Empty batch, so refill it.
                ret = vaddr_get_pfns(k, mm, vaddr, npage, dma.prot, &pfn, &batch)
                if ret < 0 {
                    exit = .unpinOut
                    break body
                }
                if pfn_base == 0 {
                    pfn_base = pfn
                    rsvd = k.walk_is_invalid_reserved_pfn(pfn_base)
                }

                // Handle pfnmap
                if batch.size == 0 {
                    if pfn != pfn_base + pinned || !rsvd { break body }  // goto out
                    pinned += ret
                    npage -= ret
                    vaddr += PAGE_SIZE * UInt64(ret)
                    iova += PAGE_SIZE * UInt64(ret)
                    continue
                }
            }

            // pfn is preset for the first iteration: vaddr_get_pfns() provides the initial pfn
            // for pfnmaps too, so the next one is fetched at the end of the loop.
            while true {
                if pfn != pfn_base + pinned || rsvd != k.walk_is_invalid_reserved_pfn(pfn) {
                    break body  // goto out
                }

                // Reserved pages aren't counted against the user, externally pinned pages are
                // already counted against the user.
                if !rsvd && k.vfio_find_vpfn(dma, iova) == nil {
                    if !dma.lock_cap && UInt64(bitPattern: mm.locked_vm) &+ UInt64(lock_acct) &+ 1 > limit {
                        ret = -ENOMEM  // pr_warn("RLIMIT_MEMLOCK exceeded")
                        exit = .unpinOut
                        break body
                    }
                    lock_acct += 1
                }

                pinned += 1
                npage -= 1
                vaddr += PAGE_SIZE
                iova += PAGE_SIZE
                batch.offset += 1
                batch.size -= 1

                if batch.size == 0 { break }
                pfn = batch.pages[batch.offset]
            }
        }

        if exit == .out {
            // out:
            ret = k.vfio_lock_acct(lock_acct, dma.lock_cap)
        }

        // unpin_out:
        if ret < 0 {
            if pinned > 0 && !rsvd {
                var pfn = pfn_base
                while pinned > 0 {
                    _ = k.put_pfn(pfn, dma.prot)
                    pfn += 1
                    pinned -= 1
                }
            }
            k.vfio_batch_unpin(&batch, dma)
            return ret
        }

        return pinned
    }

    /// `vaddr_get_pfns()` on a single-page batch; anything but 1 is the error.
    static func vfio_pin_page_external<R: LeafRefill>(
        _ refill: R, _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        guard let mm = k.current_mm else { return -ENODEV }  // get_task_mm()
        var batch = VFIOBatch(disable_hugepages: true)  // vfio_batch_init_single(): one page
        var ret = refill.vaddr_get_pfns(k, mm, vaddr, 1, dma.prot, &pfn_base, &batch)
        if ret != 1 { return ret }
        ret = 0
        if do_accounting && !k.is_invalid_reserved_pfn(pfn_base) {
            ret = k.vfio_lock_acct(1, dma.lock_cap)
            if ret != 0 { _ = k.put_pfn(pfn_base, dma.prot) }  // pr_warn("RLIMIT_MEMLOCK exceeded")
        }
        return ret
    }

    /// `vfio_pin_page_external()` of 6.15: one page pinned for a mdev vendor driver.
    public func vfio_pin_page_external(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        Self.vfio_pin_page_external(self, k, dma, vaddr, &pfn_base, do_accounting)
    }
}

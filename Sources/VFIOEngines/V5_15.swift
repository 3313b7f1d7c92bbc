// swift-format-ignore-file: AlwaysUseLowerCamelCase

// Linux 5.15 (read in 5.15.85), drivers/vfio/vfio_iommu_type1.c: vaddr_get_pfns() over a
// batch of up to 512 pages (4d83de6da265, 5.12), follow_fault_pfn() with follow_pte() and
// fault-in (07956b6269d3, 41311242221e), the single-entry batch release of 60c988bc1541, and
// the zero-page unpin loop of 873aefb376bb. Stands for 5.12 to 5.19; its loop is also the
// core of v6.1 and v6.12.
//
// What a trace sees that 4.16 did not (SPEC-LATER §5.1): D1 a page GUP cannot pin fails the
// call holding the run before it; D2 a batch is faulted before its first page is checked;
// D4 raw pfns come from the page table; D5 a run starting at pfn 0 restarts at the next
// refill; plus the container's D6 (unmap to 2^64) and D7 (dma_entry_limit).
//
// Deviations from the kernel: the mmap lock is never dropped, so follow_fault_pfn() never
// returns -EAGAIN (D-2); untagged_addr() is the identity.
import VFIOModel

/// The refill half of a batch engine: what `vaddr_get_pfns()` of its version does.
protocol BatchRefill {
    func vaddr_get_pfns(
        _ k: Host, _ mm: MM, _ vaddr: VAddr, _ npages: Int, _ prot: Prot, _ pfn: inout PFN, _ pages: inout [PFN]
    ) -> Int
}

extension Host {
    /// `is_invalid_reserved_pfn()` called by `vfio_pin_pages_remote()` itself (5.12 on): each
    /// such page-class check is one step of the walk (`pages_walked`): a page, a 6.18 group,
    /// or the first page of a run. A pfnmap leaf step (6.15 on) makes none. This is what a C
    /// engine of the same code counts too (include/pinreplay/engine-later.c).
    @inline(__always) func walk_is_invalid_reserved_pfn(_ pfn: PFN) -> Bool {
        counters.pages_walked += 1
        return is_invalid_reserved_pfn(pfn)
    }
}

/// 5.12 to 5.19: 512-page batches, raw pfns through the page table with fault-in.
public struct V5_15: PinEngine, BatchRefill {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "v5.15" }
    public var aliases: [String] { [] }
    public var summary: String { "512-page GUP batches; raw pfns from follow_pte() with fault-in" }
    public var kernels: String { "5.12 to 5.19 (Ubuntu 22.04 LTS)" }
    public var profile: EngineProfile { .v5_15 }

    func follow_fault_pfn(_ k: Host, _ vma: VMA, _ mm: MM, _ vaddr: VAddr, _ pfn: inout PFN, _ write_fault: Bool) -> Int {
        var args = k.follow_pte(vma, vaddr)
        if args == nil {
            let ret = k.fixup_user_fault(mm, vaddr, write: write_fault)
            if ret != 0 { return ret }
            args = k.follow_pte(vma, vaddr)
        }
        guard let args else { return -EINVAL }
        // A present read-only pte is not faulted for a write.
        if write_fault && !args.writable { return -EFAULT }
        pfn = args.pfn
        return 0
    }

    func vaddr_get_pfns(
        _ k: Host, _ mm: MM, _ vaddr: VAddr, _ npages: Int, _ prot: Prot, _ pfn: inout PFN, _ pages: inout [PFN]
    ) -> Int {
        k.counters.vaddr_get_pfn += 1
        k.down_read(mm)  // mmap_read_lock()
        defer { k.up_read(mm) }
        var ret = k.pin_user_pages_remote(mm, vaddr, npages, write: prot.contains(.IOMMU_WRITE), &pages)
        if ret > 0 {
            // The zero page is always resident: unpin it here, put_pfn() will skip it.
            for i in 0..<ret where k.is_zero_pfn(pages[i]) {
                k.unpin_user_page(pages[i])
            }
            pfn = pages[0]
            return ret
        }

        if let vma = k.vma_lookup(mm, vaddr), vma.flags.contains(.pfnmap) {
            ret = follow_fault_pfn(k, vma, mm, vaddr, &pfn, prot.contains(.IOMMU_WRITE))
            if ret == 0 {
                ret = k.is_invalid_reserved_pfn(pfn) ? 1 : -EFAULT
            }
        }
        return ret
    }

    /// `vfio_pin_pages_remote()` of 5.15: pins a run of pages and returns how many.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int {
        Self.vfio_pin_pages_remote(self, k, dma, vaddr, npage, &pfn_base, limit, &batch)
    }

    /// Where the kernel function leaves through its labels.
    enum Exit { case out, unpinOut }

    /// The 5.12 to 6.14 loop, over the refill of the version at hand.
    static func vfio_pin_pages_remote<R: BatchRefill>(
        _ refill: R, _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN,
        _ limit: UInt64, _ batch: inout VFIOBatch
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

        var exit = Exit.out
        body: while npage > 0 {
            if batch.size == 0 {
                // Empty batch, so refill it.
                let req_pages = min(npage, batch.capacity)
                ret = refill.vaddr_get_pfns(k, mm, vaddr, req_pages, dma.prot, &pfn, &batch.pages)
                if ret < 0 {
                    exit = .unpinOut
                    break body
                }
                batch.size = ret
                batch.offset = 0
                // pfn 0 stands for "no run yet": a run starting at pfn 0 restarts here.
                if pfn_base == 0 {
                    pfn_base = pfn
                    rsvd = k.walk_is_invalid_reserved_pfn(pfn_base)
                }
            }

            // pfn is preset for the first iteration and fetched at the end of each, since a
            // VM_PFNMAP pfn is not in batch.pages.
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

            if k.disable_hugepages { break }
        }

        if exit == .out {
            // out:
            ret = k.vfio_lock_acct(lock_acct, dma.lock_cap)
        }

        // unpin_out:
        if batch.size == 1 && batch.offset == 0 {
            // May be a VM_PFNMAP pfn, which the batch can't remember (60c988bc1541).
            _ = k.put_pfn(pfn, dma.prot)
            batch.size = 0
        }

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

    /// `vfio_pin_page_external()` of the batch kernels: `vaddr_get_pfns()` on a single-page
    /// batch, anything but 1 is the error.
    static func vfio_pin_page_external<R: BatchRefill>(
        _ refill: R, _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        guard let mm = k.current_mm else { return -ENODEV }  // get_task_mm()
        var pages: [PFN] = [0]
        var ret = refill.vaddr_get_pfns(k, mm, vaddr, 1, dma.prot, &pfn_base, &pages)
        if ret != 1 { return ret }
        ret = 0
        if do_accounting && !k.is_invalid_reserved_pfn(pfn_base) {
            ret = k.vfio_lock_acct(1, dma.lock_cap)
            if ret != 0 { _ = k.put_pfn(pfn_base, dma.prot) }  // pr_warn("RLIMIT_MEMLOCK exceeded")
        }
        return ret
    }

    /// `vfio_pin_page_external()` of 5.15: one page pinned for a mdev vendor driver.
    public func vfio_pin_page_external(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        Self.vfio_pin_page_external(self, k, dma, vaddr, &pfn_base, do_accounting)
    }
}

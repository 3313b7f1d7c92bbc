// swift-format-ignore-file: AlwaysUseLowerCamelCase

// Linux 6.18 (2025 LTS): 6.15's vaddr_get_pfns() and pfnmap step; the per-page loop becomes
// per group of physically contiguous batch pages (num_pages_contiguous(), 929bf010e059 and
// f6c84a52cc41), charged less vpfn_pages() (d10872050ffe); the dma remembers whether it
// mapped a reserved run (has_rsvd, 089722e8939e), and without one the unpin releases a whole
// extent with unpin_user_page_range_dirty_lock() (d14de5b92578).
//
// What a trace sees (D9): rsvd is compared only at the start of a group, so a physically
// adjacent page of the other class joins the run: a reserved page after a ram start is
// charged and released by the range unpin (balanced); a ram page after a reserved start joins
// an uncharged run, the dma gets has_rsvd, and its unmap uncharges the ram page: locked_vm
// drops below its baseline.
//
// Outside these functions, the container of this profile has Alex Mastro's end-of-address-
// space series (ef270ec44637, 6012379ede6a, 6.18-rc4; D14): wrapping requests fail -EOVERFLOW,
// lookups compare inclusive ends, the unpin walks by offset. Nothing observable changed in
// these paths up to 7.1, so this engine stands for 6.18 to 7.1.
//
// Deviations from the kernel: as v5.15.
import VFIOModel

/// Run-wise contiguity and accounting; range unpin.
public struct V6_18: PinEngine, LeafRefill {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "v6.18" }
    public var aliases: [String] { [] }
    public var summary: String { "v6.15 plus per-group contiguity and accounting, has_rsvd, range unpin; IOVA up to 2^64 - 1 (-EOVERFLOW)" }
    public var kernels: String { "6.18 (2025 LTS) to 7.1" }
    public var profile: EngineProfile { .v6_18 }

    private let base = V6_15()

    /// Unchanged from 6.15.
    func vaddr_get_pfns(
        _ k: Host, _ mm: MM, _ vaddr: VAddr, _ npages: Int, _ prot: Prot, _ pfn: inout PFN, _ batch: inout VFIOBatch
    ) -> Int {
        base.vaddr_get_pfns(k, mm, vaddr, npages, prot, &pfn, &batch)
    }

    enum Exit { case out, unpinOut }

    /// `vfio_pin_pages_remote()` of 6.18: pins a run of pages and returns how many.
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

            while true {
                if pfn != pfn_base + pinned || rsvd != k.walk_is_invalid_reserved_pfn(pfn) {
                    break body  // goto out
                }

                // GUP with FOLL_LONGTERM returns no invalid pages, so a group is a run.
                let nr_pages = k.num_pages_contiguous(batch.pages, batch.offset, batch.size)
                var acct_pages = 0
                if !rsvd {
                    acct_pages = nr_pages - k.vpfn_pages(dma, iova, nr_pages)
                }

                // Reserved pages aren't counted against the user, externally pinned pages are
                // already counted against the user.
                if acct_pages > 0 {
                    if !dma.lock_cap
                        && UInt64(bitPattern: mm.locked_vm) &+ UInt64(lock_acct) &+ UInt64(acct_pages) > limit
                    {
                        ret = -ENOMEM  // pr_warn("RLIMIT_MEMLOCK exceeded")
                        exit = .unpinOut
                        break body
                    }
                    lock_acct += acct_pages
                }

                pinned += nr_pages
                npage -= nr_pages
                vaddr += PAGE_SIZE * UInt64(nr_pages)
                iova += PAGE_SIZE * UInt64(nr_pages)
                batch.offset += nr_pages
                batch.size -= nr_pages

                if batch.size == 0 { break }
                pfn = batch.pages[batch.offset]
            }
        }

        if exit == .out {
            // out:
            dma.has_rsvd = dma.has_rsvd || rsvd
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

    /// `put_valid_unreserved_pfns()`.
    func put_valid_unreserved_pfns(_ k: Host, _ start_pfn: PFN, _ npage: Int, _ prot: Prot) {
        k.unpin_user_page_range_dirty_lock(start_pfn, npage, prot)
    }

    /// 6.18's unpin: page by page only when the dma ever mapped a reserved run; otherwise the
    /// whole extent at once, every page counted as unlocked.
    public func vfio_unpin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ iova: IOVA, _ pfn: PFN, _ npage: Int, _ do_accounting: Bool
    ) -> Int {
        var unlocked = 0
        let locked = k.vpfn_pages(dma, iova, npage)

        if dma.has_rsvd {
            var pfn = pfn
            for _ in 0..<npage {
                if k.put_pfn(pfn, dma.prot) == 1 { unlocked += 1 }
                pfn += 1
            }
        } else {
            put_valid_unreserved_pfns(k, pfn, npage, dma.prot)
            unlocked = npage
        }
        if do_accounting { _ = k.vfio_lock_acct(locked - unlocked, true) }

        return unlocked
    }

    /// `vfio_pin_page_external()` of 6.18: one page pinned for a mdev vendor driver.
    public func vfio_pin_page_external(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        V6_15.vfio_pin_page_external(self, k, dma, vaddr, &pfn_base, do_accounting)
    }
}

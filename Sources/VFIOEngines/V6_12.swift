// swift-format-ignore-file: AlwaysUseLowerCamelCase

// Linux 6.12 (stands for 6.2 to 6.14): 5.15's vfio_pin_pages_remote() loop, unchanged; a
// vaddr_get_pfns() without the zero-page unpin loop (reverted by 5b992412776c, 6.9: R/O
// long-term pins no longer return the zero page) and with follow_pfnmap_start()
// (6da8e9634bb7). Its world differs more than its code: R/O long-term pins of reserved pages
// in private VMAs unshare into fresh anonymous pages (84209e87c696, 6.2: D3), and vfio-pci
// installs one pfnmap leaf per fault, huge where it can, with no pre-fault (f9e54c3a2f5b).
//
// Deviations from the kernel: as v5.15; the huge-fault placement is 6.15's rule
// (c1d9dac0db16, in stable), D-7.
import VFIOModel

/// 5.15's loop on the 6.2+ world: R/O pins unshare, pfnmap leaves per fault.
public struct V6_12: PinEngine, BatchRefill {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "v6.12" }
    public var aliases: [String] { [] }
    public var summary: String { "v5.15's loop; R/O long-term pins unshare every non-anon page; follow_pfnmap_start()" }
    public var kernels: String { "6.2 to 6.14 (6.6, 6.12 LTS; RHEL 10)" }
    public var profile: EngineProfile { .v6_12 }

    func follow_fault_pfn(_ k: Host, _ vma: VMA, _ mm: MM, _ vaddr: VAddr, _ pfn: inout PFN, _ write_fault: Bool) -> Int {
        var args = k.follow_pfnmap_start(vma, vaddr)
        if args == nil {
            let ret = k.fixup_user_fault(mm, vaddr, write: write_fault)
            if ret != 0 { return ret }
            args = k.follow_pfnmap_start(vma, vaddr)
        }
        guard let args else { return -EINVAL }
        if write_fault && !args.writable { return -EFAULT }
        pfn = args.pfn
        return 0  // follow_pfnmap_end()
    }

    func vaddr_get_pfns(
        _ k: Host, _ mm: MM, _ vaddr: VAddr, _ npages: Int, _ prot: Prot, _ pfn: inout PFN, _ pages: inout [PFN]
    ) -> Int {
        k.counters.vaddr_get_pfn += 1
        k.down_read(mm)  // mmap_read_lock()
        defer { k.up_read(mm) }
        var ret = k.pin_user_pages_remote(mm, vaddr, npages, write: prot.contains(.IOMMU_WRITE), &pages)
        if ret > 0 {
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

    /// 5.15's loop, unchanged.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int {
        V5_15.vfio_pin_pages_remote(self, k, dma, vaddr, npage, &pfn_base, limit, &batch)
    }

    /// `vfio_pin_page_external()` of 6.12: one page pinned for a mdev vendor driver.
    public func vfio_pin_page_external(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        V5_15.vfio_pin_page_external(self, k, dma, vaddr, &pfn_base, do_accounting)
    }
}

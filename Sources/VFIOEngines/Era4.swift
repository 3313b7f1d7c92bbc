// swift-format-ignore-file: AlwaysUseLowerCamelCase

// The shape of the 4.x engines: vaddr_get_pfn() for one page and vfio_pin_pages_remote()
// with 4.16's signature (lock_cap passed in, no batch). The per-request batch the container
// threads through later kernels goes unused, and the external pin is 4.16's.
import VFIOModel

/// An engine of the 4.x era: it provides the two kernel functions, this provides the rest.
protocol SinglePageEngine: PinEngine {
    /// Resolves the pfn behind one user page; 0 with `pfn` set, or -errno.
    func vaddr_get_pfn(_ k: Host, _ mm: MM, _ vaddr: VAddr, _ prot: Prot, _ pfn: inout PFN) -> Int

    /// 4.16's signature: `lock_cap` sampled by vfio_pin_map_dma(), no batch.
    func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ lock_cap: Bool, _ limit: UInt64
    ) -> Int
}

extension SinglePageEngine {
    public var profile: EngineProfile { .v4_16 }

    /// No batch before 5.12: the per-request one goes unused.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int {
        vfio_pin_pages_remote(k, dma, vaddr, npage, &pfn_base, dma.lock_cap, limit)
    }

    /// 4.16's vfio_pin_page_external(): the engine's vaddr_get_pfn() on one page.
    public func vfio_pin_page_external(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        guard let mm = k.current_mm else { return -ENODEV }  // get_task_mm()
        var ret = vaddr_get_pfn(k, mm, vaddr, dma.prot, &pfn_base)
        if ret == 0 && do_accounting && !k.is_invalid_reserved_pfn(pfn_base) {
            ret = k.vfio_lock_acct(1, true)
            if ret != 0 { _ = k.put_pfn(pfn_base, dma.prot) }  // pr_warn("RLIMIT_MEMLOCK exceeded")
        }
        return ret
    }
}

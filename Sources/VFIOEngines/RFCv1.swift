// swift-format-ignore-file: AlwaysUseLowerCamelCase

// The first RFC (Jason Cai, 2018-02-24, on top of Linux 4.16): try_io_pfnmap() runs before
// anything else and, on any VM_IO|VM_PFNMAP VMA whose pgoff-derived pfn is invalid or
// reserved, returns min(npage, vma_pages(vma)) without pinning or accounting. Otherwise the
// 4.16 code runs unchanged, so this file holds only what the patch added.
import VFIOModel

/// The first RFC: `try_io_pfnmap()` first, on any `VM_IO|VM_PFNMAP` VMA, pfn from `vm_pgoff`.
public struct RFCv1: SinglePageEngine {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "rfc-v1" }
    public var aliases: [String] { [] }
    public var summary: String { "first RFC: try_io_pfnmap() before GUP on any VM_IO|VM_PFNMAP VMA" }
    public var kernels: String { "RFC posted 2018-02-24 on 4.16, never merged" }

    private let base = V4_16()

    /// Unchanged from 4.16.
    public func vaddr_get_pfn(_ k: Host, _ mm: MM, _ vaddr: VAddr, _ prot: Prot, _ pfn: inout PFN) -> Int {
        base.vaddr_get_pfn(k, mm, vaddr, prot, &pfn)
    }

    func try_io_pfnmap(_ k: Host, _ mm: MM, _ vaddr: VAddr, _ npage: Int, _ pfn: inout PFN) -> Int {
        var pinned = 0

        k.counters.pages_walked += 1
        k.down_read(mm)
        if let vma = k.find_vma_intersection(mm, vaddr, vaddr + 1), !vma.flags.isDisjoint(with: [.io, .pfnmap]) {
            pfn = PFN(((vaddr - vma.start) >> PAGE_SHIFT) &+ vma.pgoff)
            if k.is_invalid_reserved_pfn(pfn) {
                // The whole VMA's size, not what lies past vaddr.
                pinned = min(npage, vma_pages(vma))
            }
        }
        k.up_read(mm)

        return pinned
    }

    func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN,
        _ lock_cap: Bool, _ limit: UInt64
    ) -> Int {
        // This code path is only user initiated
        guard let mm = k.current_mm else { return -ENODEV }

        let ret = try_io_pfnmap(k, mm, vaddr, npage, &pfn_base)
        if ret != 0 { return ret }

        // The rest of the function is 4.16's.
        return base.vfio_pin_pages_remote(k, dma, vaddr, npage, &pfn_base, lock_cap, limit)
    }
}

// swift-format-ignore-file: AlwaysUseLowerCamelCase

// Linux 6.0 and 6.1.y: vfio_pin_pages_remote() and vaddr_get_pfns() are 5.15's (read in a
// 5.19/6.0-era tree). What changed is outside them, in vfio_iommu_type1_pin_pages(): an
// external pin of a pfn without a struct page fails with -EINVAL (4752354af710, 6.4, in 6.1.y
// from June 2023), which the container applies for this engine's profile (D8); and in GUP: a
// read-only pin of an anonymous page that may be shared unshares it first (mm a7f226604170,
// 5.19; D11), which the world applies for this profile. So this file holds only the profile;
// the functions are 5.15's.
import VFIOModel

/// 5.15's pinning with external pins of MMIO refused.
public struct V6_1: PinEngine {
    /// The engine; it holds no state (the host does).
    public init() {}
    public var name: String { "v6.1" }
    public var aliases: [String] { [] }
    public var summary: String { "v5.15's pinning; R/O pins unshare possibly shared anon pages; external pins of MMIO fail -EINVAL" }
    public var kernels: String { "6.0 to 6.1.y (Debian 12); 6.1 before 6.1.32-ish pins as v5.15" }
    public var profile: EngineProfile { .v6_1 }

    private let base = V5_15()

    /// Unchanged from 5.15.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int {
        base.vfio_pin_pages_remote(k, dma, vaddr, npage, &pfn_base, limit, &batch)
    }

    /// Unchanged from 5.15 (the pfn_valid() check follows it in the container).
    public func vfio_pin_page_external(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
    ) -> Int {
        base.vfio_pin_page_external(k, dma, vaddr, &pfn_base, do_accounting)
    }
}

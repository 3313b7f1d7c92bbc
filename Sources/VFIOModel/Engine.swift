// swift-format-ignore-file: AlwaysUseLowerCamelCase

/// One kernel version of the type1 pinning code: its `vaddr_get_pfn()` and
/// `vfio_pin_pages_remote()`, and its `vfio_unpin_pages_remote()` where that changed.
///
/// Engines are stateless; the `Host` they are handed is the simulated kernel they run in.
/// They return in the kernel's convention: a count, or a negative errno.
public protocol PinEngine: Sendable {
    /// Canonical name used in reports, e.g. `v4.16`.
    var name: String { get }
    /// Other names accepted on the command line, e.g. `old`.
    var aliases: [String] { get }
    /// One line saying what this version does.
    var summary: String { get }

    /// Resolves the pfn behind one user page; 0 with `pfn` set, or -errno.
    func vaddr_get_pfn(_ k: Host, _ mm: MM, _ vaddr: VAddr, _ prot: Prot, _ pfn: inout PFN) -> Int

    /// Pins a physically contiguous run starting at `vaddr`, at most `npage` pages; returns its
    /// length with `pfn_base` set, or -errno.
    func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN,
        _ lock_cap: Bool, _ limit: UInt64
    ) -> Int

    /// Unpins `npage` consecutive pfns mapped at `iova`; returns how many were unpinned.
    func vfio_unpin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ iova: IOVA, _ pfn: PFN, _ npage: Int, _ do_accounting: Bool
    ) -> Int
}

extension PinEngine {
    /// Linux 4.16's `vfio_unpin_pages_remote()`: put every pfn, count those that held a page
    /// reference, and (when asked) uncharge them less the externally pinned ones.
    public func vfio_unpin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ iova: IOVA, _ pfn: PFN, _ npage: Int, _ do_accounting: Bool
    ) -> Int {
        var unlocked = 0
        var locked = 0
        var iova = iova
        var pfn = pfn
        for _ in 0..<npage {
            if k.put_pfn(pfn, dma.prot) == 1 {
                unlocked += 1
                if k.vfio_find_vpfn(dma, iova) != nil { locked += 1 }
            }
            pfn += 1
            iova += PAGE_SIZE
        }
        if do_accounting { _ = k.vfio_lock_acct(locked - unlocked, true) }
        return unlocked
    }
}

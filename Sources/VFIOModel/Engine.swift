// swift-format-ignore-file: AlwaysUseLowerCamelCase

/// What the world and the container do differently for the kernel an engine stands for
/// (SPEC-LATER §1): the engine's host is built with it, so faults, `touch` and the container's
/// rules follow the engine's kernel, not only its pinning function. (SPEC-LATER's `gup` field
/// is not here: which GUP an engine calls is in its own code, and nothing else reads it.)
public struct EngineProfile: Equatable, Sendable {
    /// What one fault of a `linear` io/pfnmap VMA (a vfio-pci BAR mmap) installs (§2.5).
    public enum PfnmapFaults: Sendable {
        /// One 4 KiB pte at the fault address (4.x).
        case onePte
        /// 4 KiB ptes over the whole VMA at the first fault (5.8 to 6.11).
        case wholeVMA
        /// One 1 GiB, 2 MiB or 4 KiB leaf per fault, no pre-fault (6.12 on).
        case leaf
    }

    /// R/O long-term pins break COW of every page that is not anonymous in a private VMA: the
    /// zero page, reserved pages, a driver's page in a mixedmap VMA (mm 84209e87c696, 6.2).
    public var unshareRO: Bool
    /// R/O pins unshare an anonymous page that may be shared, one the world did not make
    /// exclusive itself (mm a7f226604170, 5.19; SPEC-LATER §2.2, D11).
    public var unshareAnon: Bool
    /// How vfio-pci's fault handler fills a BAR mapping on this kernel.
    public var pfnmapFaults: PfnmapFaults
    /// An unmap ending exactly at 2^64 passes the wrap check (58fec830fc19, 5.0).
    public var unmapTopFix: Bool
    /// `dma_entry_limit` caps the number of dmas: -ENOSPC (492855939bdb, 5.1).
    public var dmaEntryLimit: Bool
    /// External pins of pfns without a struct page fail with -EINVAL (4752354af710, 6.1.y).
    public var pinNeedsStructPage: Bool
    /// Requests may reach the last page of the IOVA space: a request whose end wraps fails
    /// -EOVERFLOW, lookups compare inclusive ends, the unpin walks by offset (Alex Mastro's
    /// series, ef270ec44637 and 6012379ede6a, 6.18-rc4; SPEC-LATER §3.3, D14).
    public var addressLimit: Bool

    /// A profile from its parts.
    public init(
        unshareRO: Bool, unshareAnon: Bool, pfnmapFaults: PfnmapFaults, unmapTopFix: Bool, dmaEntryLimit: Bool,
        pinNeedsStructPage: Bool, addressLimit: Bool
    ) {
        self.unshareRO = unshareRO
        self.unshareAnon = unshareAnon
        self.pfnmapFaults = pfnmapFaults
        self.unmapTopFix = unmapTopFix
        self.dmaEntryLimit = dmaEntryLimit
        self.pinNeedsStructPage = pinNeedsStructPage
        self.addressLimit = addressLimit
    }

    /// Linux 4.16 and everything built on it here (rfc-v1, v4.17-rc1, fixed).
    public static let v4_16 = EngineProfile(
        unshareRO: false, unshareAnon: false, pfnmapFaults: .onePte, unmapTopFix: false, dmaEntryLimit: false,
        pinNeedsStructPage: false, addressLimit: false)
    /// 5.12 to 5.19 (5.19's anonymous unshare is left to v6.1: Ubuntu 22.04 runs 5.15).
    public static let v5_15 = EngineProfile(
        unshareRO: false, unshareAnon: false, pfnmapFaults: .wholeVMA, unmapTopFix: true, dmaEntryLimit: true,
        pinNeedsStructPage: false, addressLimit: false)
    /// 6.0 and 6.1.y: R/O pins unshare possibly shared anonymous pages.
    public static let v6_1 = EngineProfile(
        unshareRO: false, unshareAnon: true, pfnmapFaults: .wholeVMA, unmapTopFix: true, dmaEntryLimit: true,
        pinNeedsStructPage: true, addressLimit: false)
    /// 6.2 to 6.17: R/O long-term pins unshare every page, vfio-pci installs huge pfnmap leaves.
    public static let v6_12 = EngineProfile(
        unshareRO: true, unshareAnon: true, pfnmapFaults: .leaf, unmapTopFix: true, dmaEntryLimit: true,
        pinNeedsStructPage: true, addressLimit: false)
    /// 6.18 on: v6.12's world, requests up to the last page of the IOVA space.
    public static let v6_18 = EngineProfile(
        unshareRO: true, unshareAnon: true, pfnmapFaults: .leaf, unmapTopFix: true, dmaEntryLimit: true,
        pinNeedsStructPage: true, addressLimit: true)
}

/// `struct vfio_batch`: the pages one `pin_user_pages_remote()` call returned, consumed by
/// `vfio_pin_pages_remote()` from `offset`. `vfio_pin_map_dma()` owns one per request and
/// threads it through every call, so leftover pages carry from one chunk to the next. The
/// 4.x engines ignore it.
public struct VFIOBatch {
    /// The pages, as pfns; only `pages[offset..<offset + size]` are live.
    public var pages: [PFN]
    /// 512 (`PAGE_SIZE / sizeof(struct page *)`), or 1 with `disable_hugepages`.
    public let capacity: Int
    /// Pages held.
    public var size = 0
    /// Pages already consumed from the front.
    public var offset = 0

    /// `VFIO_BATCH_MAX_CAPACITY`.
    public static let maxCapacity = 512

    /// `vfio_batch_init()`.
    public init(disable_hugepages: Bool) {
        capacity = disable_hugepages ? 1 : Self.maxCapacity
        pages = [PFN](repeating: 0, count: capacity)
    }
}

/// What answers a host's DMA requests: the vfio type1 container driving a type1 engine's
/// pinning functions, or a whole other backend (iommufd). The world under it (mm, GUP,
/// vfio-pci faults) is the host's and is shared by every backend.
public protocol DMABackend: AnyObject {
    /// `VFIO_IOMMU_MAP_DMA` or its counterpart.
    func map(_ iova: IOVA, _ vaddr: VAddr, _ size: UInt64, _ prot: Prot) -> RequestOutcome
    /// `VFIO_IOMMU_UNMAP_DMA` or its counterpart.
    func unmap(_ iova: IOVA, _ size: UInt64) -> RequestOutcome
    /// The unmap of everything (`VFIO_DMA_UNMAP_FLAG_ALL`); iova and size must be 0.
    func unmapAll(_ iova: IOVA, _ size: UInt64) -> RequestOutcome
    /// An mdev vendor driver's `vfio_pin_pages()`.
    func pin(_ iova: IOVA, _ npage: Int, _ prot: Prot) -> RequestOutcome
    /// An mdev vendor driver's `vfio_unpin_pages()`.
    func unpin(_ iova: IOVA, _ npage: Int) -> RequestOutcome
    /// The process exits: every pin released, every mapping removed (the host then checks
    /// for leaks).
    func close()
}

/// One engine: a kernel version (or a reviewer's patch) that answers DMA requests on its own
/// simulated host. Type1 engines (`PinEngine`) plug pinning functions into the type1
/// container; an engine that replaces the container brings its own `DMABackend`.
public protocol Engine: Sendable {
    /// Canonical name used in reports, e.g. `v4.16`.
    var name: String { get }
    /// Other names accepted on the command line, e.g. `old`.
    var aliases: [String] { get }
    /// One line saying what this version does.
    var summary: String { get }
    /// The kernels this engine stands for, e.g. `6.2 to 6.14 (6.6, 6.12 LTS)`.
    var kernels: String { get }
    /// How the world and the container behave under this engine's kernel.
    var profile: EngineProfile { get }
    /// What the `locked_vm` of this engine's outcomes counts.
    var lockedVMCounter: LockedVMCounter { get }
    /// The backend answering requests on `host`.
    func makeBackend(_ host: Host) -> any DMABackend
    /// Why this engine answered a map of `vaddr` as it did, when that is what a user moving
    /// to it must know (iommufd refusing a BAR); nil when there is nothing to say.
    func explain(map outcome: RequestOutcome, on host: Host, vaddr: VAddr) -> String?
}

extension Engine {
    /// Most engines need no words beyond their outcomes.
    public func explain(map outcome: RequestOutcome, on host: Host, vaddr: VAddr) -> String? { nil }
}

/// The counter an engine charges pinned pages to, which its outcomes' `locked_vm` reports.
public enum LockedVMCounter: String, Sendable {
    /// `mm->locked_vm` of the process (type1, iommufd's type1 compat).
    case mm = "mm->locked_vm"
    /// `user->locked_vm` of the uid, shared by every process of the user (iommufd).
    case user = "user->locked_vm"
}

/// One kernel version of the type1 pinning code: its `vfio_pin_pages_remote()` (over the
/// per-request batch), the external pin of one page, and its `vfio_unpin_pages_remote()` where
/// that changed. Each engine file also holds its version's `vaddr_get_pfn(s)()`.
///
/// Engines are stateless; the `Host` they are handed is the simulated kernel they run in.
/// They return in the kernel's convention: a count, or a negative errno.
public protocol PinEngine: Engine {

    /// Pins a physically contiguous run starting at `vaddr`, at most `npage` pages; returns its
    /// length with `pfn_base` set, or -errno. `dma.lock_cap` and `limit` were sampled once for
    /// the request.
    func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int

    /// `vfio_pin_page_external()`: pins the one page at `vaddr` for an mdev vendor driver;
    /// 0 with `pfn_base` set, or -errno.
    func vfio_pin_page_external(_ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool)
        -> Int

    /// Unpins `npage` consecutive pfns mapped at `iova`; returns how many were unpinned.
    func vfio_unpin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ iova: IOVA, _ pfn: PFN, _ npage: Int, _ do_accounting: Bool
    ) -> Int
}

extension PinEngine {
    /// Type1 engines charge the process's `mm->locked_vm`.
    public var lockedVMCounter: LockedVMCounter { .mm }

    /// The type1 container, calling this engine's pinning functions.
    public func makeBackend(_ host: Host) -> any DMABackend { Type1Container(host) }

    /// Linux 4.16's `vfio_unpin_pages_remote()` (unchanged up to 6.17): put every pfn, count
    /// those that held a page reference, and (when asked) uncharge them less the externally
    /// pinned ones.
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

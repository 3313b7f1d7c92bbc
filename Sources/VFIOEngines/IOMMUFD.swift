// swift-format-ignore-file: AlwaysUseLowerCamelCase

// iommufd (drivers/iommu/iommufd/, 6.18): not a vfio_pin_pages_remote() variant but another
// container. An IOAS holds areas (`struct iopt_area`) over user pages (`struct iopt_pages`);
// a map pins the range with pin_user_pages() in chunks of up to 8192 pages, packs the pfns
// into batches of contiguous runs (`struct pfn_batch`, 5461 runs of a 64 KiB batch), maps
// every run into the one IOMMU domain, and charges the pages once, at the end
// (iopt_area_fill_domains(), pfn_reader_update_pinned()). An unmap removes whole areas only.
// mdev pins (`iommufd_access_pin_pages()`) hand out the domain's pfns without pinning again.
// Read in io_pagetable.c and pages.c of ColinIanKing/linux-next (SPEC-IOMMUFD.md has the rest).
//
// What a trace sees against type1 (SPEC-IOMMUFD §7): I1 a BAR map fails -EFAULT (no
// follow_pfnmap fallback before dma-buf), I2 CAP_IPC_LOCK charges nothing, I3 reserved pages
// are pinned and charged, I4 an over-limit map maps everything then unwinds, I5 unmaps of
// nothing or of part of an area fail -ENOENT, I6 `iommufd` charges the uid, I7 mdev pins take
// no new reference, I8 no entry limit, I9 compat maps `map … -`, I11 disable_hugepages
// does nothing.
//
// Deviations: one domain; reserved IOVA regions, IOVA allocation, dirty tracking and
// IOMMU_IOAS_COPY are not modelled; a misaligned mdev pin iova is -EINVAL (as D-5 for type1).
import VFIOModel

/// The two iommufd engines: how the IOAS is reached, which decides the accounting.
public enum IOMMUFDFlavour: Sendable {
    /// `-object iommufd`: IOMMU_IOAS_MAP/UNMAP, pages charged to the user (IOPT_PAGES_ACCOUNT_USER).
    case native
    /// `/dev/vfio/vfio` served by iommufd (CONFIG_IOMMUFD_VFIO_CONTAINER): the type1 ioctls,
    /// pages charged to the mm (the context is in IOPT_PAGES_ACCOUNT_MM mode).
    case compat
}

/// `-object iommufd` on 6.18.
public struct IOMMUFD: Engine {
    /// The engine; it holds no state (its backend does).
    public init() {}
    public var name: String { "iommufd" }
    /// `--engines iommufd` is the group (v6.18 and both iommufd engines); this names the engine alone.
    public var aliases: [String] { ["iommufd-native"] }
    public var summary: String { "IOMMU_IOAS_MAP/UNMAP: areas over pinned pages, charged to the user; no BAR (P2P) maps" }
    public var kernels: String { "6.18 iommufd (QEMU -object iommufd); locked_vm is user->locked_vm" }
    public var profile: EngineProfile { .v6_18 }
    public var lockedVMCounter: LockedVMCounter { .user }
    public func makeBackend(_ host: Host) -> any DMABackend { IOAS(host, .native) }
    public func explain(map outcome: RequestOutcome, on host: Host, vaddr: VAddr) -> String? {
        explainIOMMUFD(outcome, host, vaddr)
    }
}

/// A type1v2 container served by iommufd on 6.18.
public struct IOMMUFDCompat: Engine {
    /// The engine; it holds no state (its backend does).
    public init() {}
    public var name: String { "iommufd-compat" }
    public var aliases: [String] { [] }
    public var summary: String { "type1 ioctls served by iommufd (vfio_compat.c): charged to the mm; no BAR (P2P) maps" }
    public var kernels: String { "6.18 with CONFIG_IOMMUFD_VFIO_CONTAINER; locked_vm is mm->locked_vm" }
    public var profile: EngineProfile { .v6_18 }
    public var lockedVMCounter: LockedVMCounter { .mm }
    public func makeBackend(_ host: Host) -> any DMABackend { IOAS(host, .compat) }
    public func explain(map outcome: RequestOutcome, on host: Host, vaddr: VAddr) -> String? {
        explainIOMMUFD(outcome, host, vaddr)
    }
}

extension Engine {
    /// What moving a map from type1 to iommufd changes, in words: a BAR cannot be pinned, and
    /// CAP_IPC_LOCK means nothing is charged.
    func explainIOMMUFD(_ outcome: RequestOutcome, _ host: Host, _ vaddr: VAddr) -> String? {
        if outcome.ret == -EFAULT, let vma = host.mm.findVMAIntersection(vaddr, vaddr + 1),
            !vma.flags.isDisjoint(with: [.io, .pfnmap])
        {
            return
                "BAR maps (VM_IO/VM_PFNMAP, peer-to-peer) fail -EFAULT: iommufd pins every page with pin_user_pages(), which refuses device memory, and has no follow_pfnmap path for it before dma-buf (6.19); type1 maps BARs through vfio_pin_pages_remote()'s pfnmap branch"
        }
        if outcome.ret == 0, host.cap_ipc_lock {
            return
                "CAP_IPC_LOCK: iommufd charges nothing at all (IOPT_PAGES_ACCOUNT_NONE), where type1 charges locked_vm and only skips the limit"
        }
        if outcome.ret == -ENOMEM, lockedVMCounter == .user {
            return
                "RLIMIT_MEMLOCK against user->locked_vm: iommufd charges the uid's counter, which every process of the user shares (user_locked_vm), where type1 and iommufd-compat charge the process's mm->locked_vm"
        }
        if outcome.ret == 0, case .map(_, let chunks, _) = outcome, !host.cap_ipc_lock,
            chunks.contains(where: { c in host.invalid_reserved_pfns(from: c.pfn, max: Int(c.npage)) > 0 })
        {
            return
                "reserved pages are pinned and charged: iommufd charges every page pin_user_pages() returns, where type1 neither references nor charges an is_invalid_reserved_pfn() run"
        }
        return nil
    }
}

/// `enum iopt_pages_account_mode`.
enum IOPTAccountMode { case none, user, mm }

/// `struct iommufd_access` on one area: an mdev's pin of `[iova, iova + npage)`.
struct IOMMUFDAccess {
    var iova: IOVA
    var npage: Int
    var users: Int
}

/// `struct iopt_area` with its `struct iopt_pages`.
final class IOPTArea {
    let iova: IOVA
    let vaddr: VAddr
    let size: UInt64
    let iommu_prot: Prot
    let account_mode: IOPTAccountMode
    var accesses: [IOMMUFDAccess] = []

    init(iova: IOVA, vaddr: VAddr, size: UInt64, iommu_prot: Prot, account_mode: IOPTAccountMode) {
        self.iova = iova
        self.vaddr = vaddr
        self.size = size
        self.iommu_prot = iommu_prot
        self.account_mode = account_mode
    }
    var last: UInt64 { iova.rawValue &+ (size - 1) }
    var npages: Int { Int(size >> PAGE_SHIFT) }
}

/// The IOAS of one iommufd context: its areas and the one domain they fill.
final class IOAS: DMABackend {
    unowned let k: Host
    let flavour: IOMMUFDFlavour
    /// Sorted by iova, disjoint (`iopt->area_itree`): a position is two binary searches, an
    /// insertion or removal moves a chunk, as the type1 container's dmas.
    var areas = Chunked<IOPTArea>()

    /// `sizeof(struct pfn_batch)` entries a 64 KiB batch holds: 8-byte pfn, 4-byte count.
    static let batchRuns = 65536 / 12
    /// `pin_user_pages()` is asked for at most this many pages at a time (`pfn_reader_user`).
    static let gupChunk = 8192

    init(_ host: Host, _ flavour: IOMMUFDFlavour) {
        k = host
        self.flavour = flavour
    }

    /// The counter this flavour's outcomes report.
    var lockedVM: Int64 { flavour == .native ? k.user_locked_vm : k.mm.locked_vm }

    // MARK: - Map

    func map(_ iova: IOVA, _ vaddr: VAddr, _ size: UInt64, _ prot: Prot) -> RequestOutcome {
        k.beginMapRequest()
        let ret = map_dma(iova, vaddr, size, prot)
        return .map(ret: ret, chunks: k.mapChunks, lockedVM: lockedVM)
    }

    /// `iommufd_ioas_map()` or `iommufd_vfio_map_dma()`, then `iopt_map_user_pages()`.
    func map_dma(_ iova: IOVA, _ vaddr: VAddr, _ size: UInt64, _ prot: Prot) -> Int {
        if flavour == .native {
            if iova.rawValue >= UInt64.max || size >= UInt64.max { return -EOVERFLOW }
            // 996dc53ac289 (6.11): a map must be readable or writeable.
            if prot.isEmpty { return -EINVAL }
        }
        // The compat path accepts no access bits: the pages are pinned read-only and mapped
        // with IOMMU_CACHE alone.
        // iopt_alloc_pages()
        if size == 0 { return -EINVAL }
        if vaddr.rawValue.addingReportingOverflow(size).overflow { return -EOVERFLOW }
        // iopt_alloc_area_pages(): iova_alignment is the domain's 4 KiB.
        if size & (PAGE_SIZE - 1) != 0 { return -EINVAL }
        // iopt_check_iova()
        if iova.rawValue & (PAGE_SIZE - 1) != 0 { return -EINVAL }
        let (last, overflow) = iova.rawValue.addingReportingOverflow(size - 1)
        if overflow { return -EOVERFLOW }
        if area_iter_first(iova.rawValue, last) != nil { return -EEXIST }
        // iopt_insert_area()
        if vaddr.rawValue & (PAGE_SIZE - 1) != 0 { return -EINVAL }

        // iopt_alloc_pages(): CAP_IPC_LOCK at map time charges nothing at all.
        var mode: IOPTAccountMode = k.cap_ipc_lock ? .none : .user
        // iopt_map_user_pages(): a context opened as /dev/vfio/vfio accounts to the mm.
        if flavour == .compat && mode == .user { mode = .mm }
        let area = IOPTArea(iova: iova, vaddr: vaddr, size: size, iommu_prot: prot, account_mode: mode)
        let rc = iopt_area_fill_domains(area)
        if rc != 0 { return rc }
        areas.insert(area, at: areas.partitioningIndex { $0.iova > iova })
        return 0
    }

    /// The first area intersecting `[start, last]` (`iopt_area_iter_first()`).
    func area_iter_first(_ start: UInt64, _ last: UInt64) -> Chunked<IOPTArea>.Index? {
        let i = areas.partitioningIndex { $0.last >= start }
        guard i != areas.endIndex, areas[i].iova.rawValue <= last else { return nil }
        return i
    }

    /// `iopt_area_fill_domains()` through the pfn reader: pin, batch, map every batch, then
    /// charge. On failure everything this map did is undone.
    func iopt_area_fill_domains(_ area: IOPTArea) -> Int {
        let npages = area.npages
        let write = area.iommu_prot.contains(.IOMMU_WRITE)
        let maxRuns = min(npages, Self.batchRuns)
        var user = [PFN](repeating: 0, count: min(npages, Self.gupChunk))
        var userSize = 0
        var userOffset = 0
        var idx = 0
        var batch: [(pfn: PFN, n: Int)] = []

        /// Undoes the map: unmaps and unpins what the domain holds, unpins what is not mapped.
        func unwind(_ rc: Int) -> Int {
            for run in batch { k.unpin_user_page_range_dirty_lock(run.pfn, run.n, area.iommu_prot) }
            for i in userOffset..<userSize { k.unpin_user_page(user[i]) }
            iopt_area_unfill_domain(area, mapped: idx - batch.reduce(0) { $0 + $1.n })
            return rc
        }

        while idx < npages {
            batch.removeAll(keepingCapacity: true)
            let batchStart = idx
            // pfn_reader_fill_span(): fill the batch from pages pinned ahead.
            while idx < npages {
                if userOffset == userSize {
                    k.down_read(k.mm)
                    let r = k.pin_user_pages_remote(
                        k.mm, area.vaddr + UInt64(idx) << PAGE_SHIFT, min(npages - idx, Self.gupChunk), write: write, &user)
                    k.up_read(k.mm)
                    if r < 0 { return unwind(r) }
                    userSize = r
                    userOffset = 0
                }
                k.counters.pages_walked += 1
                let pfn = user[userOffset]
                if let last = batch.last, last.pfn + last.n == pfn {
                    batch[batch.count - 1].n += 1
                } else if batch.count < maxRuns {
                    batch.append((pfn, 1))
                } else {
                    break  // a full batch: this page starts the next one
                }
                userOffset += 1
                idx += 1
            }
            // batch_to_domain(): one iommu_map() per run.
            var at = batchStart
            for run in batch {
                let off = UInt64(at) << PAGE_SHIFT
                _ = k.iommu_map(area.iova + off, run.pfn, run.n, vaddr: area.vaddr + off)
                at += run.n
            }
        }
        batch.removeAll()
        // pfn_reader_update_pinned(): one charge for the whole area.
        let rc = iopt_pages_update_pinned(area, npages, inc: true)
        if rc != 0 { return unwind(rc) }
        return 0
    }

    /// `iopt_pages_update_pinned()`: charge (or uncharge) `npages` in the area's mode, and
    /// move `mm->pinned_vm`, which every mode does.
    func iopt_pages_update_pinned(_ area: IOPTArea, _ npages: Int, inc: Bool) -> Int {
        k.counters.vfio_lock_acct += 1
        let n = Int64(npages)
        let limit = k.rlimit_memlock() >> PAGE_SHIFT
        switch area.account_mode {
        case .none:
            break
        case .user:
            // incr_user_locked_vm() / decr_user_locked_vm()
            if inc {
                if UInt64(bitPattern: k.user_locked_vm) &+ UInt64(npages) > limit { return -ENOMEM }
                k.user_locked_vm &+= n
            } else if k.user_locked_vm >= n {
                k.user_locked_vm -= n
            }  // else WARN_ON: the counter would go below zero, left alone
        case .mm:
            // __account_locked_vm(mm, npages, inc, task, false)
            k.down_write(k.mm)
            if inc {
                if UInt64(bitPattern: k.mm.locked_vm) &+ UInt64(npages) > limit { return -ENOMEM }
                k.mm.locked_vm &+= n
            } else {
                k.mm.locked_vm &-= n
            }
        }
        k.mm.pinned_vm &+= inc ? n : -n
        return 0
    }

    /// `iopt_area_unfill_domain()`: reads the first `mapped` pages back from the domain,
    /// unmaps them, and unpins each contiguous run.
    func iopt_area_unfill_domain(_ area: IOPTArea, mapped: Int) {
        var done = 0
        while done < mapped {
            let iova = area.iova + UInt64(done) << PAGE_SHIFT
            guard let run = k.iommu_domain_run(iova) else { break }
            let n = min(Int(run.count), mapped - done)
            k.counters.iova_to_phys += n
            k.iommu_unmap_pages(iova, UInt64(n))
            k.unpin_user_page_range_dirty_lock(run.value, n, area.iommu_prot)
            done += n
        }
    }

    // MARK: - Unmap

    func unmap(_ iova: IOVA, _ size: UInt64) -> RequestOutcome {
        var unmapped: UInt64 = 0
        var ret: Int
        if flavour == .native && (iova.rawValue >= UInt64.max || size >= UInt64.max) {
            ret = -EOVERFLOW
        } else {
            ret = iopt_unmap_iova(iova, size, &unmapped)
        }
        // The compat ioctl copies `unmapped` back even on error; the native one only on success.
        if flavour == .native && ret != 0 { unmapped = 0 }
        return .unmap(ret: ret, unmapped: unmapped, lockedVM: lockedVM)
    }

    func unmapAll(_ iova: IOVA, _ size: UInt64) -> RequestOutcome {
        // VFIO_DMA_UNMAP_FLAG_ALL wants iova and size 0; natively the request is (0, U64_MAX).
        guard iova == 0 && size == 0 else { return .unmap(ret: -EINVAL, unmapped: 0, lockedVM: lockedVM) }
        var unmapped: UInt64 = 0
        var ret = iopt_unmap_iova_range(0, UInt64.max, &unmapped)
        if ret == -ENOENT { ret = 0 }  // iopt_unmap_all(): nothing mapped is success
        return .unmap(ret: ret, unmapped: unmapped, lockedVM: lockedVM)
    }

    /// `iopt_unmap_iova()`.
    func iopt_unmap_iova(_ iova: IOVA, _ length: UInt64, _ unmapped: inout UInt64) -> Int {
        if length == 0 { return -EINVAL }
        let (last, overflow) = iova.rawValue.addingReportingOverflow(length - 1)
        if overflow { return -EOVERFLOW }
        return iopt_unmap_iova_range(iova.rawValue, last, &unmapped)
    }

    /// `iopt_unmap_iova_range()`: whole areas only, lowest first; an area the range cuts stops
    /// the walk with -ENOENT, those before it already gone.
    func iopt_unmap_iova_range(_ start: UInt64, _ last: UInt64, _ unmapped: inout UInt64) -> Int {
        var rc = -ENOENT
        while let i = area_iter_first(start, last) {
            let area = areas[i]
            if area.iova.rawValue < start || area.last > last { return -ENOENT }
            // iommufd_access_notify_unmap(): the vendor driver unpins, then the walk goes on.
            area.accesses.removeAll()
            areas.remove(at: i)
            iopt_area_unfill_domain(area, mapped: area.npages)
            _ = iopt_pages_update_pinned(area, area.npages, inc: false)
            unmapped += area.size
            rc = 0
        }
        return rc
    }

    // MARK: - mdev pins

    func pin(_ iova: IOVA, _ npage: Int, _ prot: Prot) -> RequestOutcome {
        var pfns: [PFN] = []
        let ret = iommufd_access_pin_pages(iova, npage, prot, &pfns)
        return .pin(ret: ret, pfns: ret < 0 ? [] : pfns, lockedVM: lockedVM)
    }

    /// `vfio_pin_pages()` on an iommufd-bound device: `iommufd_access_pin_pages()`. The pages
    /// come from the domain, already pinned by the map: no GUP, no reference, no charge.
    func iommufd_access_pin_pages(_ iova: IOVA, _ npage: Int, _ prot: Prot, _ out: inout [PFN]) -> Int {
        if npage <= 0 { return -EINVAL }
        if npage > VFIO_PIN_PAGES_MAX_ENTRIES { return -E2BIG }
        let length = UInt64(npage) << PAGE_SHIFT
        let (last, overflow) = iova.rawValue.addingReportingOverflow(length - 1)
        if overflow { return -EOVERFLOW }
        if iova.rawValue & (PAGE_SIZE - 1) != 0 { return -EINVAL }
        // iopt_for_each_contig_area(): the areas must cover the range without a gap.
        var covered = iova.rawValue
        var touched: [IOPTArea] = []
        while let i = area_iter_first(covered, last), areas[i].iova.rawValue <= covered {
            let area = areas[i]
            let write = prot.contains(.IOMMU_WRITE)
            if write ? !area.iommu_prot.contains(.IOMMU_WRITE) : !area.iommu_prot.contains(.IOMMU_READ) {
                return -EPERM
            }
            touched.append(area)
            if area.last >= last {
                covered = last
                break
            }
            covered = area.last &+ 1
        }
        guard let end = touched.last, end.last >= last else { return -ENOENT }
        // iopt_area_add_access(): one access per area piece, or one more user of the same one.
        for area in touched {
            let from = max(iova.rawValue, area.iova.rawValue)
            let to = min(last, area.last)
            let piece = IOMMUFDAccess(iova: IOVA(from), npage: Int((to - from) >> PAGE_SHIFT) + 1, users: 1)
            if let j = area.accesses.firstIndex(where: { $0.iova == piece.iova && $0.npage == piece.npage }) {
                area.accesses[j].users += 1
            } else {
                area.accesses.append(piece)
            }
        }
        for p in 0..<UInt64(npage) {
            let at = IOVA(iova.rawValue + p << PAGE_SHIFT)
            k.counters.iova_to_phys += 1
            out.append(k.iommu_domain_run(at)?.value ?? 0)
        }
        return npage
    }

    func unpin(_ iova: IOVA, _ npage: Int) -> RequestOutcome {
        .unpin(ret: iommufd_access_unpin_pages(iova, npage), lockedVM: lockedVM)
    }

    /// `iommufd_access_unpin_pages()`: it must name exactly what was pinned, else it WARNs and
    /// does nothing; the last user ends the access, and the domain keeps its pages pinned.
    /// Returns the pages released, or -EINVAL when none (v4.16's formula, SPEC-LATER D-4).
    func iommufd_access_unpin_pages(_ iova: IOVA, _ npage: Int) -> Int {
        if npage <= 0 { return -EINVAL }
        if npage > VFIO_PIN_PAGES_MAX_ENTRIES { return -E2BIG }
        let last = iova.rawValue &+ (UInt64(npage) << PAGE_SHIFT &- 1)
        var released = 0
        var at = iova.rawValue
        while at <= last, let i = area_iter_first(at, last) {
            let area = areas[i]
            guard let j = area.accesses.firstIndex(where: { $0.iova.rawValue == at }) else { break }
            let n = area.accesses[j].npage
            area.accesses[j].users -= 1
            if area.accesses[j].users == 0 { area.accesses.remove(at: j) }
            released += n
            at &+= UInt64(n) << PAGE_SHIFT
            if at == 0 { break }
        }
        return released > 0 ? released : -EINVAL
    }

    // MARK: - Close

    /// `iommufd_fops_release()`: every area unmapped, its pages unpinned and uncharged.
    func close() {
        var unmapped: UInt64 = 0
        _ = iopt_unmap_iova_range(0, UInt64.max, &unmapped)
    }
}

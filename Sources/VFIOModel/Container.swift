// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The vfio type1 container with Linux 4.16 semantics (v2 interface), and the later kernels'
// changes keyed by the engine's profile (SPEC-LATER §3): vfio_dma_do_map(),
// vfio_pin_map_dma(), vfio_dma_do_unmap(), vfio_unmap_unpin(), external pins.
//
// Deviations from the kernel, all written down in SPEC.md §2:
// - one IOMMU domain at 4 KiB granularity; iommu_map() never fails;
// - an unmap removes the overlapped dmas in ascending iova (the kernel takes whichever the
//   rb-tree descent meets first);
// - when an unmap meets external pins, the vendor driver releases them all at once.

import Synchronization

extension PFN: RunValue {
    /// The frame `offset` frames further on.
    @inlinable public func advanced(by offset: UInt64) -> PFN { PFN(rawValue &+ offset) }
}

/// An externally pinned page (`struct vfio_pfn`), as an mdev vendor driver pins it.
public struct VFIOPfn: Equatable, Sendable {
    /// The pinned page's iova.
    public var iova: IOVA
    /// Its frame.
    public var pfn: PFN
    /// How many external pins hold it.
    public var ref_count: Int
}

/// One `VFIO_IOMMU_MAP_DMA` mapping (`struct vfio_dma`).
public final class VFIODma {
    /// Where the device sees the mapping.
    public let iova: IOVA
    /// The process address it maps.
    public let vaddr: VAddr
    /// Grows chunk by chunk while it is being pinned.
    public var size: UInt64 = 0
    /// What the device may do through it.
    public let prot: Prot
    /// Whether `vfio_pin_map_dma()` completed: an iommu mapping exists.
    public var iommu_mapped = false
    /// `capable(CAP_IPC_LOCK)` when the map request came (5.x: `dma->lock_cap`).
    public var lock_cap = false
    /// A reserved run was mapped into this dma (6.18: picks the unpin path); never cleared.
    public var has_rsvd = false
    /// External pins, keyed by iova.
    public var pfn_list: [UInt64: VFIOPfn] = [:] {
        didSet { pinsVersion = VFIODma.pinsVersions.wrappingAdd(1, ordering: .relaxed).newValue }
    }
    /// Which state of `pfn_list` this is: 0 while it was never changed, else a number no other
    /// dma's pins ever had, so that a copy of them (a C engine's) can tell whether it is current.
    public private(set) var pinsVersion: UInt64 = 0
    private static let pinsVersions = Atomic<UInt64>(0)

    /// A `vfio_dma` of `size` 0, grown as the map proceeds.
    public init(iova: IOVA, vaddr: VAddr, prot: Prot) {
        self.iova = iova
        self.vaddr = vaddr
        self.prot = prot
    }
}

/// The container (`struct vfio_iommu`): its dmas and its IOMMU domain.
public struct VFIOIommu {
    /// Sorted by iova, non-overlapping (the kernel's rb-tree).
    fileprivate var dmas = Chunked<VFIODma>()
    /// The dmas in iova order (a copy: O(n)).
    public var dma_list: [VFIODma] { dmas.elements }
    /// `iommu->dma_avail`: dmas that may still be created (engines with `dmaEntryLimit`).
    public var dma_avail = 65535
    /// The domain's page table: iova page -> pfn.
    public fileprivate(set) var domain = RunMap<PFN>()
    /// A container with no mappings.
    public init() {}
}

/// `VFIO_PIN_PAGES_MAX_ENTRIES`: one page of unsigned longs.
public let VFIO_PIN_PAGES_MAX_ENTRIES = 512

/// The vfio type1 container as a host's backend: requests go to the container functions
/// below, which call the host's type1 engine.
public final class Type1Container: DMABackend {
    unowned let k: Host
    /// The container of `host`, whose engine must be a type1 engine.
    public init(_ host: Host) { k = host }
    public func map(_ iova: IOVA, _ vaddr: VAddr, _ size: UInt64, _ prot: Prot) -> RequestOutcome {
        k.vfio_dma_do_map(iova, vaddr, size, prot)
    }
    public func unmap(_ iova: IOVA, _ size: UInt64) -> RequestOutcome { k.vfio_dma_do_unmap(iova, size) }
    public func unmapAll(_ iova: IOVA, _ size: UInt64) -> RequestOutcome { k.vfio_dma_do_unmap_all(iova, size) }
    public func pin(_ iova: IOVA, _ npage: Int, _ prot: Prot) -> RequestOutcome {
        k.vfio_iommu_type1_pin_pages(iova, npage, prot)
    }
    public func unpin(_ iova: IOVA, _ npage: Int) -> RequestOutcome { k.vfio_iommu_type1_unpin_pages(iova, npage) }
    public func close() { k.vfio_iommu_type1_release() }
}

extension Host {
    /// The type1 engine's pinning functions; only a type1 engine's host enters this container.
    var pinning: any PinEngine {
        guard let type1Engine else { preconditionFailure("\(engine.name) is not a type1 engine") }
        return type1Engine
    }

    // MARK: - dma list

    /// `vfio_find_dma()`: a dma overlapping `[start, start + size)`, the lowest one if several.
    /// Before 6.18 the kernel compares with wrapping exclusive ends, so a range or a dma ending
    /// at 2^64 matches nothing; 6.18 compares inclusive ends (`addressLimit`).
    public func vfio_find_dma(_ start: IOVA, _ size: UInt64) -> VFIODma? {
        let list = iommu.dmas
        var i = firstEndingAtOrAbove(start)
        while i != list.endIndex {
            let dma = list[i]
            if profile.addressLimit {
                if start.rawValue &+ size &- 1 < dma.iova.rawValue { return nil }
                if !(start.rawValue > dma.iova.rawValue &+ dma.size &- 1) { return dma }
            } else {
                if start.rawValue &+ size <= dma.iova.rawValue { return nil }
                if !(start.rawValue >= dma.iova.rawValue &+ dma.size) { return dma }
            }
            i = list.index(after: i)
        }
        return nil
    }

    /// The first dma whose last byte is at or above `start` (true arithmetic: the list is
    /// sorted and disjoint); the kernel's comparisons then decide whether it counts.
    private func firstEndingAtOrAbove(_ start: IOVA) -> Chunked<VFIODma>.Index {
        iommu.dmas.partitioningIndex { d in
            d.iova > start || (d.size > 0 && d.iova.rawValue + (d.size - 1) >= start.rawValue)
        }
    }

    /// `vfio_find_dma_first_node()` (5.12 on): the position of the lowest dma that ends after
    /// `start` and begins inside the range, as the kernel's arithmetic sees it. Before 6.18 a
    /// dma ending at 2^64 ends at 0 and is never the first node, and a range ending at 2^64
    /// ends at 0 and holds nothing; 6.18 compares with the range's last iova, `iova_end`.
    private func vfio_find_dma_first_node(_ start: IOVA, _ size: UInt64, _ iova_end: UInt64)
        -> Chunked<VFIODma>.Index?
    {
        let list = iommu.dmas
        let i = firstEndingAtOrAbove(start)
        guard i != list.endIndex else { return nil }
        let dma = list[i]
        if profile.addressLimit { return dma.iova.rawValue > iova_end ? nil : i }
        if dma.iova.rawValue &+ dma.size == 0 { return nil }
        return size != 0 && dma.iova.rawValue >= start.rawValue &+ size ? nil : i
    }

    func vfio_link_dma(_ dma: VFIODma) {
        iommu.dmas.insert(dma, at: dmaIndex(dma.iova))
    }

    func vfio_unlink_dma(_ dma: VFIODma) {
        var i = dmaIndex(dma.iova)
        // Kernels before 6.18 let two dmas at the top of the IOVA space share an iova.
        while i != iommu.dmas.endIndex, iommu.dmas[i] !== dma, iommu.dmas[i].iova == dma.iova {
            i = iommu.dmas.index(after: i)
        }
        precondition(i != iommu.dmas.endIndex && iommu.dmas[i] === dma, "unlinking a dma not in the list")
        iommu.dmas.remove(at: i)
    }

    /// Position of the first dma at or above `iova`.
    private func dmaIndex(_ iova: IOVA) -> Chunked<VFIODma>.Index {
        iommu.dmas.partitioningIndex { $0.iova >= iova }
    }

    /// `vfio_find_vpfn()`: the external pin of `dma` at exactly `iova`.
    @inlinable
    public func vfio_find_vpfn(_ dma: VFIODma, _ iova: IOVA) -> VFIOPfn? {
        dma.pfn_list.isEmpty ? nil : dma.pfn_list[iova.rawValue]
    }

    /// `vpfn_pages()` (6.18): how many external pins lie in `npage` pages from `iova`; by the
    /// pages or by the pins, whichever are fewer.
    public func vpfn_pages(_ dma: VFIODma, _ iova: IOVA, _ npage: Int) -> Int {
        if dma.pfn_list.isEmpty { return 0 }
        let start = iova.rawValue
        let end = start &+ UInt64(npage) << PAGE_SHIFT
        if npage <= dma.pfn_list.count {
            return (0..<UInt64(npage)).count { dma.pfn_list[start &+ $0 << PAGE_SHIFT] != nil }
        }
        return dma.pfn_list.keys.count { start <= $0 && $0 < end }
    }

    // MARK: - Accounting

    /// `vfio_lock_acct()`: charges (or with a negative count uncharges) `locked_vm`. A charge is
    /// checked against RLIMIT_MEMLOCK unless the caller, or with nil the task, has
    /// CAP_IPC_LOCK; the comparison is unsigned, as the kernel's.
    public func vfio_lock_acct(_ npage: Int, _ lock_cap: Bool?) -> Int {
        if npage == 0 { return 0 }
        counters.vfio_lock_acct += 1
        var ret = 0
        down_write(mm)
        if npage > 0, !(lock_cap ?? cap_ipc_lock) {
            let limit = rlimit_memlock() >> PAGE_SHIFT
            if UInt64(bitPattern: mm.locked_vm) &+ UInt64(npage) > limit { ret = -ENOMEM }
        }
        if ret == 0 { mm.locked_vm &+= Int64(npage) }
        up_write(mm)
        return ret
    }

    // MARK: - IOMMU

    /// `iommu_map()` on the one domain: never fails. Records the chunk for the request's
    /// outcome and checks it against the page tables (foreign-pfn).
    func iommu_map(_ iova: IOVA, _ pfn: PFN, _ npage: Int, _ dma: VFIODma) -> Int {
        iommu_map(iova, pfn, npage, vaddr: dma.vaddr + (iova - dma.iova))
    }

    /// `iommu_map()` of `npage` pages that the process holds at `vaddr`: recorded for the
    /// request's outcome and checked against the page tables (foreign-pfn). Never fails.
    public func iommu_map(_ iova: IOVA, _ pfn: PFN, _ npage: Int, vaddr: VAddr) -> Int {
        counters.iommu_map += 1
        iommu.domain.assign(iova.rawValue >> PAGE_SHIFT, UInt64(npage), pfn)
        mapChunks.append(Chunk(iova: iova, pfn: pfn, npage: UInt64(npage)))
        checkForeign(iova, vaddr, pfn, UInt64(npage))
        return 0
    }

    /// Starts a map request's record of `iommu_map()` calls.
    public func beginMapRequest() { mapChunks.removeAll(keepingCapacity: true) }

    /// The run of the domain's page table holding `iova`, cut to start there: what
    /// `iommu_iova_to_phys()` reads page by page over a contiguous stretch.
    public func iommu_domain_run(_ iova: IOVA) -> Run<PFN>? { iommu.domain.run(at: iova.rawValue >> PAGE_SHIFT) }

    /// `iommu_unmap()` of `npage` pages at `iova`, clearing the domain's entries.
    public func iommu_unmap_pages(_ iova: IOVA, _ npage: UInt64) {
        counters.iommu_unmap += 1
        iommu.domain.assign(iova.rawValue >> PAGE_SHIFT, npage, nil)
    }

    /// `vfio_iommu_map()`: one `iommu_map()` per domain.
    func vfio_iommu_map(_ dma: VFIODma, _ iova: IOVA, _ pfn: PFN, _ npage: Int) -> Int {
        iommu_map(iova, pfn, npage, dma)
    }

    // MARK: - MAP_DMA

    /// `vfio_pin_map_dma()`: pins and maps chunk by chunk; on failure the part mapped so far
    /// is torn down and the whole request fails.
    func vfio_pin_map_dma(_ dma: VFIODma, _ map_size: UInt64) -> Int {
        let iova = dma.iova
        let vaddr = dma.vaddr
        var size = map_size
        // Sampled once per request, as the kernel does.
        let limit = rlimit_memlock() >> PAGE_SHIFT
        var ret = 0
        var batch = VFIOBatch(disable_hugepages: disable_hugepages)

        while size != 0 {
            var pfn: PFN = 0
            // Pin a contiguous chunk of memory
            let npage = pinning.vfio_pin_pages_remote(
                self, dma, vaddr + dma.size, Int(size >> PAGE_SHIFT), &pfn, limit, &batch)
            if npage <= 0 {
                ret = npage  // WARN_ON(!npage): a zero-length run ends the map "successfully"
                break
            }
            precondition(
                UInt64(npage) <= size >> PAGE_SHIFT,
                "\(pinning.name): vfio_pin_pages_remote returned \(npage) pages for \(size >> PAGE_SHIFT)")
            // Map it!
            ret = vfio_iommu_map(dma, iova + dma.size, pfn, npage)
            if ret != 0 {
                _ = pinning.vfio_unpin_pages_remote(self, dma, iova + dma.size, pfn, npage, true)
                vfio_batch_unpin(&batch, dma)
                break
            }
            size -= UInt64(npage) << PAGE_SHIFT
            dma.size += UInt64(npage) << PAGE_SHIFT
        }
        dma.iommu_mapped = true
        if ret != 0 { vfio_remove_dma(dma) }
        return ret
    }

    /// `vfio_batch_unpin()`: puts every page left in the batch.
    public func vfio_batch_unpin(_ batch: inout VFIOBatch, _ dma: VFIODma) {
        while batch.size > 0 {
            _ = put_pfn(batch.pages[batch.offset], dma.prot)
            batch.offset += 1
            batch.size -= 1
        }
    }

    /// `VFIO_IOMMU_MAP_DMA` (`vfio_dma_do_map()`): validates, links a zero-sized dma and
    /// grows it as chunks are pinned and mapped.
    public func vfio_dma_do_map(_ iova: IOVA, _ vaddr: VAddr, _ size: UInt64, _ prot: Prot) -> RequestOutcome {
        beginMapRequest()
        let ret = doMap(iova, vaddr, size, prot)
        return .map(ret: ret, chunks: mapChunks, lockedVM: mm.locked_vm)
    }

    private func doMap(_ iova: IOVA, _ vaddr: VAddr, _ size: UInt64, _ prot: Prot) -> Int {
        // The IOMMU's smallest page is folded into PAGE_SIZE.
        let mask = PAGE_SIZE - 1
        if profile.addressLimit {
            // 6.18: the overflow checks come first and say what they found.
            if size == 0 { return -EINVAL }
            if iova.rawValue.addingReportingOverflow(size - 1).overflow
                || vaddr.rawValue.addingReportingOverflow(size - 1).overflow
            {
                return -EOVERFLOW
            }
        }
        if prot.isEmpty || size == 0 || (size | iova.rawValue | vaddr.rawValue) & mask != 0 {
            return -EINVAL
        }
        // Don't allow IOVA or virtual address wrap
        if iova.rawValue &+ size &- 1 < iova.rawValue || vaddr.rawValue &+ size &- 1 < vaddr.rawValue {
            return -EINVAL
        }
        if vfio_find_dma(iova, size) != nil { return -EEXIST }
        if profile.dmaEntryLimit {
            if iommu.dma_avail == 0 { return -ENOSPC }
            iommu.dma_avail -= 1
        }
        let dma = VFIODma(iova: iova, vaddr: vaddr, prot: prot)
        dma.lock_cap = cap_ipc_lock
        // Insert zero-sized and grow as we map chunks of it
        vfio_link_dma(dma)
        return vfio_pin_map_dma(dma, size)
    }

    // MARK: - UNMAP_DMA

    /// `vfio_unmap_unpin()`: walks the IOMMU, not a pin log, for contiguous ranges and unpins
    /// whatever pfns it finds there. Returns the pages unlocked, or 0 when it did the
    /// accounting itself.
    @discardableResult
    func vfio_unmap_unpin(_ dma: VFIODma, _ do_accounting: Bool) -> Int {
        // Before 6.18 the walk compares addresses, `iova < dma->iova + dma->size`, and a dma
        // ending at 2^64 (its end wraps to 0) is not walked at all: its pages stay pinned and
        // charged. 6.18 walks by offset.
        let walked = profile.addressLimit || dma.iova.rawValue &+ dma.size != 0 ? dma.size : 0
        var pos: UInt64 = 0
        var unlocked = 0
        if dma.size == 0 { return 0 }
        // The domain's entries are cleared once at the end rather than extent by extent (each
        // a removal from the middle of the run map): the walk never looks behind itself. The
        // pages it skips stay mapped.
        var holes: [IOVA] = []

        while pos < walked {
            let iova = dma.iova + pos
            // iommu_iova_to_phys(): physical address 0 means nothing mapped (a WARN in the
            // kernel) and the walk skips a page.
            let found = iommu.domain.run(at: iova.rawValue >> PAGE_SHIFT)
            guard let run = found, run.value != 0 else {
                counters.iova_to_phys += 1
                if found != nil { holes.append(iova) }
                pos += PAGE_SIZE
                continue
            }
            let phys = run.value
            // Grow len while the next page is physically contiguous. Contiguous domain runs
            // are merged, so the run's length is what the page-by-page probe finds; the
            // probes are still counted one per page.
            let remaining = (walked - pos) >> PAGE_SHIFT
            let len = min(run.count, remaining)
            counters.iova_to_phys += Int(len) + (len < remaining ? 1 : 0)
            let unmapped = iommu_unmap(iova, len)
            if unmapped == 0 { break }  // WARN_ON
            unlocked += pinning.vfio_unpin_pages_remote(self, dma, iova, phys, Int(unmapped), false)
            pos += unmapped << PAGE_SHIFT
        }
        iommu.domain.assign(dma.iova.rawValue >> PAGE_SHIFT, pos >> PAGE_SHIFT, nil)
        for h in holes { iommu.domain.assign(h.rawValue >> PAGE_SHIFT, 1, 0) }
        dma.iommu_mapped = false
        if do_accounting {
            _ = vfio_lock_acct(-unlocked, nil)
            return 0
        }
        return unlocked
    }

    /// `iommu_unmap()` of `npage` pages at `iova`; returns the pages unmapped. The caller
    /// clears the domain's entries.
    func iommu_unmap(_ iova: IOVA, _ npage: UInt64) -> UInt64 {
        counters.iommu_unmap += 1
        return npage
    }

    /// `vfio_remove_dma()`: unmap and unpin, then unlink.
    func vfio_remove_dma(_ dma: VFIODma) {
        vfio_unmap_unpin(dma, true)
        vfio_unlink_dma(dma)
        if profile.dmaEntryLimit { iommu.dma_avail += 1 }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` (`vfio_dma_do_unmap()`, v2 interface).
    public func vfio_dma_do_unmap(_ iova: IOVA, _ size: UInt64) -> RequestOutcome {
        unmapOutcome { doUnmap(iova, size, all: false, &$0) }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL` (5.12 on; iova and size must be 0):
    /// every mapping goes. Before 5.12 the flag is unknown: -EINVAL.
    public func vfio_dma_do_unmap_all(_ iova: IOVA, _ size: UInt64) -> RequestOutcome {
        unmapOutcome { doUnmap(iova, size, all: true, &$0) }
    }

    private func unmapOutcome(_ body: (inout UInt64) -> Int) -> RequestOutcome {
        var unmapped: UInt64 = 0
        let ret = body(&unmapped)
        return .unmap(ret: ret, unmapped: ret == 0 ? unmapped : 0, lockedVM: mm.locked_vm)
    }

    private func doUnmap(_ iova: IOVA, _ size: UInt64, all unmap_all: Bool, _ unmapped: inout UInt64) -> Int {
        let mask = PAGE_SIZE - 1
        // 4.16 accepts no flags; 5.12 added VFIO_DMA_UNMAP_FLAG_ALL with the 2^64 rule of 5.0.
        if unmap_all && !profile.unmapTopFix { return -EINVAL }
        if iova.rawValue & mask != 0 { return -EINVAL }
        // The last iova the request covers (6.18) or, before, where it ends (wrapping).
        let iova_end: UInt64
        if unmap_all {
            if iova.rawValue != 0 || size != 0 { return -EINVAL }
            iova_end = UInt64.max
        } else {
            if size == 0 || size & mask != 0 { return -EINVAL }
            if profile.addressLimit {
                let (last, overflow) = iova.rawValue.addingReportingOverflow(size - 1)
                if overflow { return -EOVERFLOW }
                iova_end = last
            } else if profile.unmapTopFix {
                // 5.0 on: an unmap may end exactly at 2^64; the lookups below, whose end wraps to
                // 0, then find nothing (ret 0, nothing unmapped).
                if iova.rawValue &+ size &- 1 < iova.rawValue { return -EINVAL }
                iova_end = iova.rawValue &+ size
            } else {
                // Off by one in 4.15..4.20: an unmap ending exactly at 2^64 wraps to 0 and is refused.
                if iova.rawValue &+ size < iova.rawValue { return -EINVAL }
                iova_end = iova.rawValue &+ size
            }
        }

        if !unmap_all {
            // v2: the request may not bisect a mapping at either end.
            if let dma = vfio_find_dma(iova, 1), dma.iova != iova { return -EINVAL }
            if profile.addressLimit {
                if let dma = vfio_find_dma(IOVA(iova_end), 1), dma.iova.rawValue &+ dma.size &- 1 != iova_end {
                    return -EINVAL
                }
            } else {
                let last = IOVA(iova.rawValue &+ size &- 1)
                if let dma = vfio_find_dma(last, 0), dma.iova.rawValue &+ dma.size != iova.rawValue &+ size {
                    return -EINVAL
                }
            }
        }

        guard profile.unmapTopFix else {
            // 4.16 looks the range up again after every removal.
            while let dma = vfio_find_dma(iova, size) {
                if !dma.pfn_list.isEmpty {
                    // VFIO_IOMMU_NOTIFY_DMA_UNMAP: the vendor driver releases its pins, then the
                    // kernel looks again.
                    releaseExternalPins(dma)
                    continue
                }
                unmapped += dma.size
                vfio_remove_dma(dma)
            }
            return 0
        }

        // 5.12 on: from the first node, walk the successors while they begin inside the
        // range. With FLAG_ALL the range is [0, 2^64 - 1) before 6.18 (size = U64_MAX).
        let size = unmap_all ? UInt64.max : size
        again: while true {
            guard let first = vfio_find_dma_first_node(iova, size, iova_end) else { return 0 }
            var n = first
            while n != iommu.dmas.endIndex {
                let dma = iommu.dmas[n]
                if profile.addressLimit ? dma.iova.rawValue > iova_end : dma.iova.rawValue >= iova.rawValue &+ size {
                    break
                }
                if !dma.pfn_list.isEmpty {
                    releaseExternalPins(dma)
                    continue again
                }
                unmapped += dma.size
                vfio_remove_dma(dma)
                n = iommu.dmas.partitioningIndex { $0.iova > dma.iova }
            }
            return 0
        }
    }

    // MARK: - External pins (mdev)

    /// `vfio_iommu_type1_pin_pages()` (behind `vfio_pin_pages()`): pins `npage` pages from
    /// `iova` for a vendor driver. With an IOMMU domain in the container nothing is charged.
    public func vfio_iommu_type1_pin_pages(_ iova: IOVA, _ npage: Int, _ prot: Prot) -> RequestOutcome {
        var phys_pfn: [PFN] = []
        let ret = pinPages(iova, npage, prot, &phys_pfn)
        return .pin(ret: ret, pfns: ret < 0 ? [] : phys_pfn, lockedVM: mm.locked_vm)
    }

    private func pinPages(_ iova: IOVA, _ npage: Int, _ prot: Prot, _ phys_pfn: inout [PFN]) -> Int {
        if npage <= 0 { return -EINVAL }
        if npage > VFIO_PIN_PAGES_MAX_ENTRIES { return -E2BIG }
        if profile.addressLimit && iova.rawValue.addingReportingOverflow(UInt64(npage) << PAGE_SHIFT - 1).overflow {
            return -EOVERFLOW
        }
        // user_pfn[] holds page numbers: a trace iova that is not page aligned has no spelling.
        if iova.rawValue & (PAGE_SIZE - 1) != 0 { return -EINVAL }
        let do_accounting = false  // !IS_IOMMU_CAP_DOMAIN_IN_CONTAINER: there is a domain
        var ret = 0
        var i = 0
        pin: do {
            while i < npage {
                let iova_i = iova + UInt64(i) << PAGE_SHIFT
                guard let dma = vfio_find_dma(iova_i, PAGE_SIZE) else {
                    ret = -EINVAL
                    break pin
                }
                if dma.prot.intersection(prot) != prot {
                    ret = -EPERM
                    break pin
                }
                if var vpfn = dma.pfn_list[iova_i.rawValue] {
                    vpfn.ref_count += 1
                    dma.pfn_list[iova_i.rawValue] = vpfn
                    phys_pfn.append(vpfn.pfn)
                    i += 1
                    continue
                }
                let remote_vaddr = dma.vaddr + (iova_i - dma.iova)
                var pfn: PFN = 0
                ret = pinning.vfio_pin_page_external(self, dma, remote_vaddr, &pfn, do_accounting)
                if ret != 0 { break pin }
                if profile.pinNeedsStructPage && !pfn_valid(pfn) {
                    // 4752354af710: a pfn without a struct page cannot be pinned for a driver.
                    ret = -EINVAL
                    break pin
                }
                dma.pfn_list[iova_i.rawValue] = VFIOPfn(iova: iova_i, pfn: pfn, ref_count: 1)
                phys_pfn.append(pfn)
                i += 1
            }
            return i
        }
        // pin_unwind:
        for j in 0..<i {
            let iova_j = iova + UInt64(j) << PAGE_SHIFT
            if let dma = vfio_find_dma(iova_j, PAGE_SIZE) {
                _ = vfio_unpin_page_external(dma, iova_j, do_accounting)
            }
        }
        return ret
    }

    /// `vfio_unpin_page_external()`: drops one pin reference; the last one puts the page.
    func vfio_unpin_page_external(_ dma: VFIODma, _ iova: IOVA, _ do_accounting: Bool) -> Int {
        guard var vpfn = vfio_find_vpfn(dma, iova) else { return 0 }  // WARN_ON(!vpfn)
        var unlocked = 0
        // vfio_iova_put_vfio_pfn()
        vpfn.ref_count -= 1
        if vpfn.ref_count == 0 {
            unlocked = put_pfn(vpfn.pfn, dma.prot)
            dma.pfn_list[iova.rawValue] = nil
        } else {
            dma.pfn_list[iova.rawValue] = vpfn
        }
        if do_accounting { _ = vfio_lock_acct(-unlocked, true) }
        return unlocked
    }

    /// `vfio_iommu_type1_unpin_pages()` (behind `vfio_unpin_pages()`).
    public func vfio_iommu_type1_unpin_pages(_ iova: IOVA, _ npage: Int) -> RequestOutcome {
        .unpin(ret: unpinPages(iova, npage), lockedVM: mm.locked_vm)
    }

    private func unpinPages(_ iova: IOVA, _ npage: Int) -> Int {
        if npage <= 0 { return -EINVAL }
        if npage > VFIO_PIN_PAGES_MAX_ENTRIES { return -E2BIG }
        if iova.rawValue & (PAGE_SIZE - 1) != 0 { return -EINVAL }
        var i = 0
        while i < npage {
            let iova_i = iova + UInt64(i) << PAGE_SHIFT
            guard let dma = vfio_find_dma(iova_i, PAGE_SIZE) else { break }
            _ = vfio_unpin_page_external(dma, iova_i, false)
            i += 1
        }
        return i > 0 ? i : -EINVAL
    }

    /// The vendor driver's answer to an unmap notification: every pin on `dma` released.
    func releaseExternalPins(_ dma: VFIODma) {
        for key in dma.pfn_list.keys.sorted() {
            while dma.pfn_list[key] != nil {
                _ = vfio_unpin_page_external(dma, IOVA(key), false)
            }
        }
    }

    // MARK: - End of trace

    /// The process exits: its backend releases every pin and mapping; then the leak check of
    /// SPEC.md §4.
    public func teardown() {
        backend.close()
        checkLeaks()
    }

    /// `vfio_iommu_type1_release()`: pins released, every remaining dma removed in ascending iova.
    func vfio_iommu_type1_release() {
        while let dma = iommu.dmas.first {
            releaseExternalPins(dma)
            vfio_remove_dma(dma)
        }
    }

    private func checkLeaks() {
        phys.flushRefs()
        recordUnderflow()
        var first: (pfn: PFN, delta: Int64)?
        var pages: UInt64 = 0
        for r in phys.refs.runs {
            phys.forEachClassSegment(PFN(r.start), r.count) { start, count, cls in
                guard cls == .ram else { return }
                if first == nil { first = (start, r.value) }
                pages += count
            }
        }
        if let first { record(.leakedRefs(pfn: first.pfn, delta: first.delta, pages: pages)) }
        if mm.locked_vm != lockedVMBaseline {
            record(.leakedLockedVM(lockedVM: mm.locked_vm, baseline: lockedVMBaseline))
        }
        if user_locked_vm != userLockedVMBaseline {
            record(.leakedCounter(name: "user->locked_vm", value: user_locked_vm, baseline: userLockedVMBaseline))
        }
        if mm.pinned_vm != 0 { record(.leakedCounter(name: "pinned_vm", value: mm.pinned_vm, baseline: 0)) }
    }
}

import TestSupport
import Testing
import VFIOModel

/// vfio_dma_do_map / vfio_dma_do_unmap / external pins, with 4.16 semantics.
@Suite struct ContainerTests {
    /// A host with `pages` ram pages mapped contiguously at 0x400000 -> pfn 0x2000.
    func ramHost(_ engine: String = "v4.16", pages: UInt64 = 4) throws -> Host {
        let h = TestHost.make(engine)
        h.phys.declare(.ram, start: 0x2000, count: pages)
        h.anon(0x40_0000, pages: pages)
        try h.setPtes(0x40_0000, count: pages, pfn: 0x2000, writable: true)
        return h
    }

    /// Four pages in two physically separate runs (0x2000, 0x2008), RLIMIT_MEMLOCK three pages.
    func twoRunHost(_ engine: String) throws -> Host {
        let h = TestHost.make(engine)
        h.phys.declare(.ram, start: 0x2000, count: 16)
        h.anon(0x40_0000, pages: 4)
        try h.setPtes(0x40_0000, count: 2, pfn: 0x2000, writable: true)
        try h.setPtes(0x40_2000, count: 2, pfn: 0x2008, writable: true)
        h.memlock = 3 * PAGE_SIZE
        return h
    }

    @Test("An unmap ending exactly at 2^64 is refused (4.16 off-by-one); one page less is not")
    func unmapEndingAt2To64() {
        let h = TestHost.make("v4.16")
        #expect(h.unmap(0xffff_ffff_ffff_f000, 0x1000) == .unmap(ret: -EINVAL, unmapped: 0, lockedVM: 0))
        #expect(h.unmap(0, 0) == .unmap(ret: -EINVAL, unmapped: 0, lockedVM: 0))
        #expect(h.unmap(0, 0xffff_ffff_ffff_f000) == .unmap(ret: 0, unmapped: 0, lockedVM: 0))
    }

    @Test("RLIMIT_MEMLOCK reached exactly succeeds; one page over fails with a full unwind", arguments: ["v4.16", "v4.17-rc1"])
    func memlockBoundary(engine: String) throws {
        let exact = try ramHost(engine)
        exact.memlock = 4 * PAGE_SIZE
        #expect(exact.map(0x10000, 0x40_0000, 4 * PAGE_SIZE) == .map(ret: 0, chunks: [chunk(0x10000, 0x2000, 4)], lockedVM: 4))

        // Two physically separate runs; the second one crosses the limit on its second page.
        let over = try twoRunHost(engine)
        let out = over.map(0x10000, 0x40_0000, 4 * PAGE_SIZE)
        #expect(out == .map(ret: -ENOMEM, chunks: [chunk(0x10000, 0x2000, 2)], lockedVM: 0))
        over.teardown()
        #expect(over.violationsNow() == [])
        for pfn: UInt64 in [0x2000, 0x2001, 0x2008, 0x2009] { #expect(over.phys.refDelta(PFN(pfn)) == 0) }

        // CAP_IPC_LOCK lifts the limit but still charges.
        let cap = try twoRunHost(engine)
        cap.cap_ipc_lock = true
        let capOut = cap.map(0x10000, 0x40_0000, 4 * PAGE_SIZE)
        #expect(capOut == .map(ret: 0, chunks: [chunk(0x10000, 0x2000, 2), chunk(0x12000, 0x2008, 2)], lockedVM: 4))
        #expect(cap.unmap(0x10000, 4 * PAGE_SIZE) == .unmap(ret: 0, unmapped: 4 * PAGE_SIZE, lockedVM: 0))
    }

    @Test("The first page alone over the limit fails before anything is mapped")
    func memlockFirstPage() throws {
        let h = try ramHost()
        h.memlock = 0
        #expect(h.map(0x10000, 0x40_0000, 4 * PAGE_SIZE) == .map(ret: -ENOMEM, chunks: [], lockedVM: 0))
        #expect(h.phys.refDelta(0x2000) == 0)
    }

    @Test("An external pin inside a mapped range is not charged twice; unpinning restores it")
    func externalPin() throws {
        let h = try ramHost()
        #expect(h.map(0x10000, 0x40_0000, 4 * PAGE_SIZE) == .map(ret: 0, chunks: [chunk(0x10000, 0x2000, 4)], lockedVM: 4))
        #expect(h.vfio_iommu_type1_pin_pages(0x11000, 2, .IOMMU_READ) == .pin(ret: 2, pfns: [0x2001, 0x2002], lockedVM: 4))
        #expect(h.phys.refDelta(0x2001) == 2)
        // A second pin of the same page only takes another vpfn reference.
        #expect(h.vfio_iommu_type1_pin_pages(0x11000, 1, .IOMMU_WRITE) == .pin(ret: 1, pfns: [0x2001], lockedVM: 4))
        #expect(h.phys.refDelta(0x2001) == 2)
        #expect(h.vfio_iommu_type1_unpin_pages(0x11000, 2) == .unpin(ret: 2, lockedVM: 4))
        #expect(h.vfio_iommu_type1_unpin_pages(0x11000, 1) == .unpin(ret: 1, lockedVM: 4))
        #expect(h.phys.refDelta(0x2001) == 1)
        // Pins left behind are released by the vendor driver when the range is unmapped.
        #expect(h.vfio_iommu_type1_pin_pages(0x13000, 1, .IOMMU_READ) == .pin(ret: 1, pfns: [0x2003], lockedVM: 4))
        #expect(h.unmap(0x10000, 4 * PAGE_SIZE) == .unmap(ret: 0, unmapped: 4 * PAGE_SIZE, lockedVM: 0))
        h.teardown()
        #expect(h.violationsNow() == [])
    }

    @Test("External pin errors: count, size, no dma, prot, alignment")
    func externalPinErrors() throws {
        let h = try ramHost()
        _ = h.map(0x10000, 0x40_0000, 4 * PAGE_SIZE, "r")
        #expect(h.vfio_iommu_type1_pin_pages(0x10000, 0, .IOMMU_READ) == .pin(ret: -EINVAL, pfns: [], lockedVM: 4))
        #expect(h.vfio_iommu_type1_pin_pages(0x10000, 513, .IOMMU_READ) == .pin(ret: -E2BIG, pfns: [], lockedVM: 4))
        #expect(h.vfio_iommu_type1_pin_pages(0x90000, 1, .IOMMU_READ) == .pin(ret: -EINVAL, pfns: [], lockedVM: 4))
        #expect(h.vfio_iommu_type1_pin_pages(0x10000, 1, .IOMMU_WRITE) == .pin(ret: -EPERM, pfns: [], lockedVM: 4))
        #expect(h.vfio_iommu_type1_pin_pages(0x10800, 1, .IOMMU_READ) == .pin(ret: -EINVAL, pfns: [], lockedVM: 4))
        // Runs off the end of the dma: the pages pinned so far are unwound.
        #expect(h.vfio_iommu_type1_pin_pages(0x13000, 2, .IOMMU_READ) == .pin(ret: -EINVAL, pfns: [], lockedVM: 4))
        #expect(h.phys.refDelta(0x2003) == 1)
        #expect(h.vfio_iommu_type1_unpin_pages(0x90000, 1) == .unpin(ret: -EINVAL, lockedVM: 4))
    }

    @Test("Map validation: overlap -EEXIST; misaligned, empty, wrapping, no prot -EINVAL")
    func mapValidation() throws {
        let h = try ramHost()
        #expect(h.map(0x10000, 0x40_0000, 2 * PAGE_SIZE).ret == 0)
        #expect(h.map(0x11000, 0x40_2000, 2 * PAGE_SIZE) == .map(ret: -EEXIST, chunks: [], lockedVM: 2))
        #expect(h.map(0x20800, 0x40_2000, PAGE_SIZE).ret == -EINVAL)
        #expect(h.map(0x20000, 0x40_2800, PAGE_SIZE).ret == -EINVAL)
        #expect(h.map(0x20000, 0x40_2000, 0x800).ret == -EINVAL)
        #expect(h.map(0x20000, 0x40_2000, 0).ret == -EINVAL)
        #expect(h.map(0x20000, 0x40_2000, PAGE_SIZE, "-").ret == -EINVAL)
        #expect(h.map(0xffff_ffff_ffff_f000, 0x40_2000, 2 * PAGE_SIZE).ret == -EINVAL)
        #expect(h.map(0x20000, 0xffff_ffff_ffff_f000, 2 * PAGE_SIZE).ret == -EINVAL)
        #expect(h.map(0x20000, 0x40_2000, 2 * PAGE_SIZE) == .map(ret: 0, chunks: [chunk(0x20000, 0x2002, 2)], lockedVM: 4))
    }

    @Test("Unmap: bisecting -EINVAL at either end, several dmas at once, nothing there 0 bytes")
    func unmapRules() throws {
        let h = try ramHost()
        _ = h.map(0x10000, 0x40_0000, 2 * PAGE_SIZE)
        _ = h.map(0x12000, 0x40_2000, 2 * PAGE_SIZE)
        #expect(h.unmap(0x11000, PAGE_SIZE) == .unmap(ret: -EINVAL, unmapped: 0, lockedVM: 4))
        #expect(h.unmap(0x10000, 3 * PAGE_SIZE) == .unmap(ret: -EINVAL, unmapped: 0, lockedVM: 4))
        #expect(h.unmap(0x80000, 4 * PAGE_SIZE) == .unmap(ret: 0, unmapped: 0, lockedVM: 4))
        #expect(h.unmap(0x0, 0x100000) == .unmap(ret: 0, unmapped: 4 * PAGE_SIZE, lockedVM: 0))
        #expect(h.iommu.dma_list.isEmpty && h.iommu.domain.isEmpty)
    }

    @Test("A locked_vm statement moves the leak baseline")
    func lockedVMBaseline() throws {
        let h = try ramHost()
        h.setLockedVM(10)
        _ = h.map(0x10000, 0x40_0000, PAGE_SIZE)
        #expect(h.mm.locked_vm == 11)
        h.teardown()
        #expect(h.violationsNow() == [])
        #expect(h.mm.locked_vm == 10)
    }
}

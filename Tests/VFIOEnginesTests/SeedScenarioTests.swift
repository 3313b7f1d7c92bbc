import TestSupport
import Testing
import VFIOEngines
import VFIOModel

/// The scenarios of the seed thread and the revert, engine by engine, with exact outcomes.
@Suite struct SeedScenarioTests {
    static let barVA: UInt64 = 0x7f00_0000_0000
    static let gib16: UInt64 = 16 << 30

    @Test("16 GiB linear BAR: v4.16 walks 4,194,304 pages, v4.17-rc1 one step, same chunk")
    func bar16GiB() {
        var counters: [String: CostCounters] = [:]
        for name in ["v4.16", "v4.17-rc1"] {
            let h = TestHost.make(name)
            h.memlock = 64 << 10
            h.bar(VAddr(Self.barVA), pages: Self.gib16 >> 12, pgoff: 0x380_0000)
            let out = h.map(0x1_0000_0000, Self.barVA, Self.gib16)
            #expect(out == .map(ret: 0, chunks: [chunk(0x1_0000_0000, 0x380_0000, 4_194_304)], lockedVM: 0))
            #expect(h.violationsNow() == [])
            counters[name] = h.counters
        }
        let old = counters["v4.16"]!
        let new = counters["v4.17-rc1"]!
        #expect(old.pages_walked == 4_194_304)
        #expect(old.vaddr_get_pfn == 4_194_304)
        #expect(old.get_user_pages == 4_194_304)
        #expect(old.find_vma == 4_194_304)
        #expect(old.mmap_lock == 4_194_304)
        #expect(old.iommu_map == 1)
        #expect(new.pages_walked == 1)
        #expect(new.vaddr_get_pfn == 1)
        #expect(new.get_user_pages == 1)
        #expect(new.find_vma == 2)
        #expect(new.mmap_lock == 2)
        #expect(new.iommu_map == 1)
    }

    @Test("BAR mapped from mid-VMA past its end: v4.17-rc1 over-counts with vma_pages()", arguments: TestHost.seedEngines)
    func barPastVMAEnd(engine: String) throws {
        let h = TestHost.make(engine)
        let a = Self.barVA
        let b = a + 16 * PAGE_SIZE
        h.bar(VAddr(a), pages: 16, pgoff: 0x80000)
        h.phys.declare(.ram, start: 0x2000, count: 16)
        h.anon(VAddr(b), pages: 16)
        try h.setPtes(VAddr(b), count: 16, pfn: 0x2000, writable: true)
        let out = h.map(0x10_0000, a + 8 * PAGE_SIZE, 16 * PAGE_SIZE)
        if engine == "v4.16" {
            // Stops where the BAR's VMA ends: pfn 0x2000 is neither base+8 nor reserved.
            #expect(out == .map(ret: 0, chunks: [chunk(0x10_0000, 0x80008, 8), chunk(0x10_8000, 0x2000, 8)], lockedVM: 8))
            #expect(h.violationsNow() == [])
        } else {
            // min(16, vma_pages = 16) from vaddr = start + 8 pages: 8 pages past the VMA.
            #expect(out == .map(ret: 0, chunks: [chunk(0x10_0000, 0x80008, 16)], lockedVM: 0))
            #expect(
                h.violationsNow() == [
                    .foreignPfn(iova: 0x10_8000, vaddr: VAddr(b), mapped: 0x80010, held: 0x2000, pages: 8)
                ])
        }
    }

    @Test("Read-only map of untouched anonymous memory resolves to the zero page", arguments: TestHost.seedEngines)
    func zeroPageReadOnly(engine: String) {
        let h = TestHost.make(engine)
        h.phys.declare(.reserved, start: 0x1000, count: 1)
        h.phys.zeroPfn = 0x1000
        h.phys.declare(.ram, start: 0x1001, count: 63)
        h.anon(0x40_0000, pages: 8)
        let map = h.map(0, 0x40_0000, 16 << 10, "r")
        let atMap = h.violationsNow()
        let unmap = h.unmap(0, 16 << 10)
        let atUnmap = h.violationsNow()
        h.teardown()
        let atEnd = h.violationsNow()
        if engine == "v4.17-rc1" {
            #expect(map == .map(ret: 0, chunks: [chunk(0, 0x1000, 4)], lockedVM: 0))
            #expect(atMap == [.foreignPfn(iova: 0x1000, vaddr: 0x40_1000, mapped: 0x1001, held: nil, pages: 3)])
            // The unmap walks 0x1000..0x1003 and puts three ram pages it never took.
            #expect(unmap == .unmap(ret: 0, unmapped: 16 << 10, lockedVM: -3))
            #expect(atUnmap == [.refcountUnderflow(pfn: 0x1001, delta: -1, pages: 3)])
            #expect(atEnd == [.leakedRefs(pfn: 0x1001, delta: -1, pages: 3), .leakedLockedVM(lockedVM: -3, baseline: 0)])
        } else {
            // One-page chunks on the zero pfn: the next page is the zero page again, not zero+1.
            #expect(map == .map(ret: 0, chunks: (0..<4).map { chunk($0 << 12, 0x1000, 1) }, lockedVM: 0))
            #expect(unmap == .unmap(ret: 0, unmapped: 16 << 10, lockedVM: 0))
            #expect(atMap + atUnmap + atEnd == [])
        }
    }

    @Test("A ram pfn then a contiguous reserved pfn: v4.17-rc1 charges both, uncharges one", arguments: TestHost.seedEngines)
    func ramThenReserved(engine: String) throws {
        let h = TestHost.make(engine)
        h.phys.declare(.ram, start: 0x2000, count: 1)
        h.phys.declare(.reserved, start: 0x2001, count: 1)
        h.anon(0x40_0000, pages: 2)
        try h.setPtes(0x40_0000, count: 1, pfn: 0x2000, writable: true)
        try h.setPtes(0x40_1000, count: 1, pfn: 0x2001, writable: true)
        let map = h.map(0x10000, 0x40_0000, 8 << 10)
        let unmap = h.unmap(0x10000, 8 << 10)
        h.teardown()
        let v = h.violationsNow()
        if engine == "v4.17-rc1" {
            #expect(map == .map(ret: 0, chunks: [chunk(0x10000, 0x2000, 2)], lockedVM: 2))
            #expect(unmap == .unmap(ret: 0, unmapped: 8192, lockedVM: 1))
            #expect(v == [.leakedLockedVM(lockedVM: 1, baseline: 0)])
        } else {
            #expect(map == .map(ret: 0, chunks: [chunk(0x10000, 0x2000, 1), chunk(0x11000, 0x2001, 1)], lockedVM: 1))
            #expect(unmap == .unmap(ret: 0, unmapped: 8192, lockedVM: 0))
            #expect(v == [])
        }
    }

    @Test("VM_IO without VM_PFNMAP: v4.16 and v4.17-rc1 fail with -EFAULT, rfc-v1 maps it", arguments: TestHost.seedEngines)
    func ioWithoutPfnmap(engine: String) {
        let h = TestHost.make(engine)
        h.mm.mmap(VMA(start: 0x50_0000, end: 0x50_4000, flags: [.io, .linear], pgoff: 0x90000))
        let out = h.map(0x20_0000, 0x50_0000, 16 << 10)
        if engine == "rfc-v1" {
            #expect(out == .map(ret: 0, chunks: [chunk(0x20_0000, 0x90000, 4)], lockedVM: 0))
        } else {
            #expect(out == .map(ret: -EFAULT, chunks: [], lockedVM: 0))
        }
        #expect(h.violationsNow() == [])
    }

    @Test("A pfnmap with scattered ptes: v4.16 maps pfns from vm_pgoff that the page tables do not hold", arguments: TestHost.seedEngines)
    func nonLinearPfnmap(engine: String) throws {
        let h = TestHost.make(engine)
        h.bar(0x60_0000, pages: 4, pgoff: 0x70000, linear: false)
        for i: UInt64 in 0..<4 {
            try h.setPtes(VAddr(0x60_0000 + i * PAGE_SIZE), count: 1, pfn: PFN(0x91000 + 2 * i), writable: true)
        }
        let out = h.map(0x30_0000, 0x60_0000, 16 << 10)
        // Every engine takes the pfn from vm_pgoff: the 5.7 fix (follow_pfn) is not in any of them.
        #expect(out == .map(ret: 0, chunks: [chunk(0x30_0000, 0x70000, 4)], lockedVM: 0))
        #expect(
            h.violationsNow() == [
                .foreignPfn(iova: 0x30_0000, vaddr: 0x60_0000, mapped: 0x70000, held: 0x91000, pages: 4)
            ])
    }

    @Test("An error after the first page ends the run quietly; the next call fails and the map unwinds", arguments: TestHost.seedEngines)
    func laterPageErrorIsSwallowed(engine: String) throws {
        let h = TestHost.make(engine)
        h.phys.declare(.ram, start: 0x2000, count: 2)
        h.anon(0x40_0000, pages: 2)
        try h.setPtes(0x40_0000, count: 2, pfn: 0x2000, writable: true)
        // The third page has no VMA: GUP fails with -EFAULT there.
        let out = h.map(0x10000, 0x40_0000, 3 * PAGE_SIZE)
        #expect(out == .map(ret: -EFAULT, chunks: [chunk(0x10000, 0x2000, 2)], lockedVM: 0))
        // Page 2 is resolved twice: once ending the first run, once failing the second call.
        #expect(h.counters.vaddr_get_pfn == 4)
        h.teardown()
        #expect(h.violationsNow() == [])
        #expect(h.phys.refDelta(0x2000) == 0 && h.phys.refDelta(0x2001) == 0)
    }

    @Test("disable_hugepages gives v4.16 one-page runs; v4.17-rc1's short-cut ignores it")
    func disableHugepages() throws {
        for engine in TestHost.seedEngines {
            let h = TestHost.make(engine)
            h.disable_hugepages = true
            h.bar(0x60_0000, pages: 4, pgoff: 0x70000)
            h.phys.declare(.ram, start: 0x2000, count: 4)
            h.anon(0x80_0000, pages: 4)
            try h.setPtes(0x80_0000, count: 4, pfn: 0x2000, writable: true)
            let bar = h.map(0x10_0000, 0x60_0000, 16 << 10)
            let ram = h.map(0x20_0000, 0x80_0000, 16 << 10)
            let ramChunks = (0..<4).map { chunk(0x20_0000 + $0 << 12, 0x2000 + $0, 1) }
            #expect(ram == .map(ret: 0, chunks: ramChunks, lockedVM: 4), "\(engine)")
            switch engine {
            case "v4.16":
                #expect(bar == .map(ret: 0, chunks: (0..<4).map { chunk(0x10_0000 + $0 << 12, 0x70000 + $0, 1) }, lockedVM: 0))
            default:
                #expect(bar == .map(ret: 0, chunks: [chunk(0x10_0000, 0x70000, 4)], lockedVM: 0), "\(engine)")
            }
        }
    }
}

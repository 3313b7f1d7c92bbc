import TestSupport
import Testing
import VFIOModel

/// The fault rules of SPEC.md §2, seen through GUP and touch.
@Suite struct FaultTests {
    @Test("Anonymous read faults map the zero page; write faults and COW take the lowest pool page")
    func anonymousFaults() throws {
        let h = TestHost.make("v4.16")
        h.phys.declare(.reserved, start: 0x10, count: 1)
        h.phys.zeroPfn = 0x10
        h.phys.addPool(start: 0x100, count: 4)
        h.anon(0x1000, pages: 4)
        var pfn: PFN = 0
        #expect(h.get_user_pages(h.mm, 0x1000, write: false, &pfn) == 1 && pfn == 0x10)
        #expect(h.mm.ptes.value(at: 1) == Pte(pfn: 0x10, writable: false))
        // A write GUP on the zero page copies into a fresh pool page.
        #expect(h.get_user_pages(h.mm, 0x1000, write: true, &pfn) == 1 && pfn == 0x100)
        #expect(h.get_user_pages(h.mm, 0x2000, write: true, &pfn) == 1 && pfn == 0x101)
        h.touch(0x3000, count: 2, write: true)
        #expect(h.mm.ptes.value(at: 4) == Pte(pfn: 0x103, writable: true, exclusive: true))
        #expect(h.phys.poolFreePages == 0)
        #expect(h.phys.refDelta(0x100) == 1 && h.phys.refDelta(0x10) == 1 && h.phys.refDelta(0x102) == 0)
        // Pool exhausted: -ENOMEM for 4 KiB pages.
        h.anon(0x10000, pages: 1)
        #expect(h.get_user_pages(h.mm, 0x10000, write: true, &pfn) == -ENOMEM)
    }

    @Test("hugetlb faults take a naturally aligned block; exhausted pool gives -EFAULT")
    func hugetlbFaults() {
        let h = TestHost.make("v4.16")
        h.phys.addPool(start: 0x11ff, count: 0x202)  // holds one aligned 2 MiB block: 0x1200
        h.mm.mmap(VMA(start: 0x4000_0000, end: 0x4080_0000, hugetlbSize: 2 << 20))
        var pfn: PFN = 0
        #expect(h.get_user_pages(h.mm, 0x4000_3000, write: false, &pfn) == 1 && pfn == 0x1203)
        #expect(h.mm.ptes.run(at: 0x4000_0) == Run(start: 0x4000_0, count: 512, value: Pte(pfn: 0x1200, writable: true, exclusive: true)))
        #expect(h.get_user_pages(h.mm, 0x4020_0000, write: false, &pfn) == -EFAULT)
    }

    @Test("GUP refuses io/pfnmap VMAs, missing permissions, no VMA, and mmio ptes")
    func gupRefusals() throws {
        let h = TestHost.make("v4.16")
        h.bar(0x10000, pages: 1, pgoff: 0x9000)
        h.mm.mmap(VMA(start: 0x20000, end: 0x21000, read: true, write: false))
        h.mm.mmap(VMA(start: 0x30000, end: 0x31000, flags: [.mixedmap]))
        try h.setPtes(0x30000, count: 1, pfn: 0x9000, writable: true)
        var pfn: PFN = 0
        #expect(h.get_user_pages(h.mm, 0x10000, write: false, &pfn) == -EFAULT)
        #expect(h.get_user_pages(h.mm, 0x20000, write: true, &pfn) == -EFAULT)
        #expect(h.get_user_pages(h.mm, 0x90000, write: false, &pfn) == -EFAULT)
        #expect(h.get_user_pages(h.mm, 0x30000, write: false, &pfn) == -EFAULT)
        #expect(throws: WorldError.self) { try h.setPtes(0x90000, count: 1, pfn: 1, writable: true) }
        // Dropping ptes where no VMA is drops nothing, and is no error (SPEC.md §2).
        #expect(throws: Never.self) { try h.setPtes(0x90000, count: 1, pfn: nil, writable: true) }
    }

    @Test("munmap splits VMAs and shifts the right part's pgoff")
    func munmapSplits() {
        let h = TestHost.make("v4.16")
        h.bar(0x10000, pages: 8, pgoff: 0x100)
        h.mm.munmap(0x12000, 0x14000)
        #expect(
            h.mm.vmas.map { [$0.start.rawValue, $0.end.rawValue, $0.pgoff] } == [[0x10000, 0x12000, 0x100], [0x14000, 0x18000, 0x104]])
    }

    @Test("follow_pfnmap_start reads the pte of a raw pfn VMA: pfn, writability, leaf mask")
    func followPfnmap() throws {
        let h = TestHost.make("v6.15")
        h.bar(0x10000, pages: 2, pgoff: 0x100, linear: false)
        try h.setPtes(0x11000, count: 1, pfn: 0x777, writable: false)
        let vma = try #require(h.mm.findVMAIntersection(0x10000, 0x10001))
        #expect(h.follow_pfnmap_start(vma, 0x10000) == nil)
        let args = try #require(h.follow_pfnmap_start(vma, 0x11000))
        #expect(args.pfn == 0x777 && !args.writable && args.addr_mask == ~UInt64(0xfff))
        // A declared 2 MiB leaf: the pfn at the address, the leaf's mask.
        h.bar(0x4000_0000, pages: 1024, pgoff: 0x80000)
        try h.setPtes(0x4000_0000, count: 1024, pfn: 0x80000, writable: true, leafShift: 21)
        let bar = try #require(h.mm.findVMAIntersection(0x4000_0000, 0x4000_0001))
        let leaf = try #require(h.follow_pfnmap_start(bar, 0x4020_3000))
        #expect(leaf.pfn == 0x80203 && leaf.writable && leaf.addr_mask == ~UInt64(0x1f_ffff))
        #expect(h.counters.follow_pfn == 3)
        // Dropping one page of a huge leaf drops the whole leaf.
        try h.setPtes(0x4020_3000, count: 1, pfn: nil, writable: true)
        #expect(h.mm.ptes.runs.map { [$0.start, $0.count] } == [[0x11, 1], [0x40000, 512]])
    }

    @Test("Touch never fails the trace: no VMA, no permission, an empty pool or a pfnmap without pte do nothing")
    func touchNeverFails() {
        let h = TestHost.make("v4.16")
        h.anon(0x1000, pages: 2)
        h.mm.mmap(VMA(start: 0x8000, end: 0x9000, read: true, write: false))
        h.bar(0x10000, pages: 1, pgoff: 0x9000, linear: false)
        h.touch(0x0, count: 0x20, write: true)  // pool empty, read-only VMA, gaps, a non-linear pfnmap
        #expect(h.mm.ptes.isEmpty)
        h.phys.addPool(start: 0x100, count: 1)
        h.touch(0x1000, count: 2, write: true)
        #expect(h.mm.ptes.runs.map { [$0.start, $0.count, $0.value.pfn.rawValue] } == [[1, 1, 0x100]])
    }

    @Test("The zero page is read-only in any pte, judged when used; a write GUP copies it")
    func zeroPageAlwaysReadOnly() throws {
        let h = TestHost.make("v4.17-rc1")
        h.anon(0x1000, pages: 1)
        try h.setPtes(0x1000, count: 1, pfn: 0x10, writable: true)  // declared writable
        h.phys.declare(.reserved, start: 0x10, count: 1)
        h.phys.zeroPfn = 0x10  // declared after the pte
        h.phys.addPool(start: 0x200, count: 1)
        var pfn: PFN = 0
        #expect(h.get_user_pages(h.mm, 0x1000, write: true, &pfn) == 1 && pfn == 0x200)
    }

    @Test("A write fault on a read-only pte copies in a private pfnmap VMA too (touch), then reads as ram")
    func privatePfnmapCopies() throws {
        let h = TestHost.make("v4.16")
        h.mm.mmap(VMA(start: 0x10000, end: 0x11000, flags: [.io, .pfnmap], pgoff: 0x9000))
        try h.setPtes(0x10000, count: 1, pfn: 0x9000, writable: false)
        h.phys.addPool(start: 0x300, count: 1)
        h.touch(0x10000, count: 1, write: true)
        #expect(h.mm.pte(at: 0x10) == Pte(pfn: 0x300, writable: true, exclusive: true))
    }
}

import Testing
import TestSupport
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
        try h.touch(0x3000, count: 2, write: true)
        #expect(h.mm.ptes.value(at: 4) == Pte(pfn: 0x103, writable: true))
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
        #expect(h.mm.ptes.run(at: 0x4000_0) == Run(start: 0x4000_0, count: 512, value: Pte(pfn: 0x1200, writable: true)))
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
        #expect(throws: WorldError.self) { try h.touch(0x90000, count: 1, write: false) }
        #expect(throws: WorldError.self) { try h.setPtes(0x90000, count: 1, pfn: 1, writable: true) }
    }

    @Test("munmap splits VMAs and shifts the right part's pgoff")
    func munmapSplits() {
        let h = TestHost.make("v4.16")
        h.bar(0x10000, pages: 8, pgoff: 0x100)
        h.mm.munmap(0x12000, 0x14000)
        #expect(h.mm.vmas.map { [$0.start.rawValue, $0.end.rawValue, $0.pgoff] } == [[0x10000, 0x12000, 0x100], [0x14000, 0x18000, 0x104]])
    }

    @Test("follow_pfn reads the pte of a raw pfn VMA")
    func followPfn() throws {
        let h = TestHost.make("v4.16")
        h.bar(0x10000, pages: 2, pgoff: 0x100, linear: false)
        try h.setPtes(0x11000, count: 1, pfn: 0x777, writable: true)
        var pfn: PFN = 0
        let vma = try #require(h.mm.findVMAIntersection(0x10000, 0x10001))
        #expect(h.follow_pfn(vma, 0x10000, &pfn) == -EINVAL)
        #expect(h.follow_pfn(vma, 0x11000, &pfn) == 0 && pfn == 0x777)
    }
}

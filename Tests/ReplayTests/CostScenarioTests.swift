import Replay
import TestSupport
import Testing
import VFIOModel

/// The worked table of docs/COST.md: estimated kernel time of the seed's BAR and of 6.18's
/// published RAM case, per engine, from the counters of a real replay on a simulated host.
@Suite struct CostScenarioTests {
    /// Estimated nanoseconds of one request on a host.
    static func cost(_ h: Host, _ request: () -> RequestOutcome) -> (ns: Int, outcome: RequestOutcome) {
        let before = CostModel.estimate(h.counters)
        let o = request()
        return (CostModel.estimate(h.counters) - before, o)
    }

    /// Map of a linear BAR of `gib` GiB at a 1 GiB-aligned address and pfn.
    static func barMap(_ engine: String, gib: UInt64, thp: THPMode = .always) -> Int {
        let h = TestHost.make(engine)
        h.thp = thp
        h.bar(0x7f00_0000_0000, pages: gib << 18, pgoff: 0x100_0000)
        let (ns, o) = cost(h) { h.map(0x1_0000_0000, 0x7f00_0000_0000, gib << 30) }
        #expect(o == .map(ret: 0, chunks: [chunk(0x1_0000_0000, 0x100_0000, gib << 18)], lockedVM: 0))
        return ns
    }

    /// 16 GiB of THP-backed guest RAM (2 MiB extents, none adjacent to the next), mapped then
    /// unmapped: the case of 6.18's cover letter (v4, on v6.16-rc4).
    static func thpRAM(_ engine: String) -> (map: Int, unmap: Int) {
        let h = TestHost.make(engine)
        let extents: UInt64 = 8192
        h.phys.declare(.ram, start: 0x100_0000, count: extents * 1024)
        h.anon(0x7f00_0000_0000, pages: extents * 512)
        for i in 0..<extents {
            try? h.setPtes(VAddr(0x7f00_0000_0000 + i << 21), count: 512, pfn: PFN(0x100_0000 + i * 1024), writable: true)
        }
        let (map, o) = cost(h) { h.map(0, 0x7f00_0000_0000, 16 << 30) }
        #expect(o.ret == 0 && o.lockedVM == 4_194_304)
        let (unmap, u) = cost(h) { h.unmap(0, 16 << 30) }
        #expect(u == .unmap(ret: 0, unmapped: 16 << 30, lockedVM: 0))
        return (map, unmap)
    }

    @Test("The seed's BAR: ~0.4 s on v4.16, ~0.5 s on v6.12 (16 faults more), ~12 µs on v6.15/v6.18 with 1 GiB leaves, one step on fixed")
    func seedBAR() {
        #expect(Self.barMap("v4.16", gib: 16) == 377_488_360)
        #expect(Self.barMap("fixed", gib: 16) == 1_090)
        #expect(Self.barMap("v5.15", gib: 16) == 503_318_015)
        #expect(Self.barMap("v6.12", gib: 16) == 503_325_965)
        #expect(Self.barMap("v6.15", gib: 16) == 11_325)
        #expect(Self.barMap("v6.18", gib: 16) == 11_325)
        // 0fd06844de5d: a 32 GiB BAR "from ~1s to sub-millisecond".
        #expect(Self.barMap("v4.16", gib: 32) == 754_975_720)
        #expect(Self.barMap("v6.15", gib: 32) == 21_645)
        // With THP never, 6.12 and later fault every 4 KiB page: 8 M faults (6.15's leaf steps make
        // no page-class check of the walk, so 8 M × 5 ns less).
        #expect(Self.barMap("v6.12", gib: 32, thp: .never) == 5_452_596_205)
        #expect(Self.barMap("v6.15", gib: 32, thp: .never) == 5_410_653_165)
    }

    @Test("6.18's published 16 GiB THP figures (map 47 → 27 ms, unmap 135 → 45 ms) within 25 %")
    func ramGroups() {
        let published: [(String, map: Double, unmap: Double)] = [("v6.15", 47e6, 135e6), ("v6.18", 27e6, 45e6)]
        for (engine, map, unmap) in published {
            let got = Self.thpRAM(engine)
            #expect(abs(Double(got.map) / map - 1) <= 0.25, "\(engine) map \(got.map) ns")
            #expect(abs(Double(got.unmap) / unmap - 1) <= 0.25, "\(engine) unmap \(got.unmap) ns")
        }
        #expect(Self.thpRAM("v4.16") == (219_029_432, 138_395_703))
        #expect(Self.thpRAM("v6.15") == (51_200_000, 138_395_703))
        #expect(Self.thpRAM("v6.18") == (30_269_440, 51_134_519))
    }
}

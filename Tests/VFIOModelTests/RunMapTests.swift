import Testing
import VFIOModel

@Suite struct RunMapTests {
    @Test("assign splits, replaces and merges runs")
    func assignMerges() {
        var m = RunMap<PFN>()
        m.assign(10, 5, 100)
        m.assign(15, 5, 105)  // continues the first run: merged
        #expect(m.runs == [Run(start: 10, count: 10, value: 100)])
        m.assign(12, 2, 500)
        #expect(
            m.runs == [
                Run(start: 10, count: 2, value: 100), Run(start: 12, count: 2, value: 500),
                Run(start: 14, count: 6, value: 104),
            ])
        #expect(m.value(at: 13) == 501)
        #expect(m.value(at: 19) == 109)
        #expect(m.value(at: 20) == nil)
        m.assign(12, 2, 102)  // restores the straight line: one run again
        #expect(m.runs == [Run(start: 10, count: 10, value: 100)])
        m.assign(0, 30, nil)
        #expect(m.isEmpty)
    }

    @Test("update visits runs and gaps; zero deltas vanish")
    func updateCounts() {
        var m = RunMap<Int64>()
        m.update(0, 4) { ($0 ?? 0) + 1 }
        m.update(2, 4) { ($0 ?? 0) + 1 }
        #expect(
            m.runs == [
                Run(start: 0, count: 2, value: 1), Run(start: 2, count: 2, value: 2),
                Run(start: 4, count: 2, value: 1),
            ])
        m.update(0, 6) { old in
            let v = (old ?? 0) - 1
            return v == 0 ? nil : v
        }
        #expect(m.runs == [Run(start: 2, count: 2, value: 1)])
    }

    @Test("forEachSegment yields runs and gaps in order")
    func segments() {
        var m = RunMap<Bool>()
        m.assign(5, 2, true)
        var seen: [String] = []
        m.forEachSegment(from: 3, count: 6) { s, n, v in seen.append("\(s)+\(n)\(v == nil ? "-" : "*")") }
        #expect(seen == ["3+2-", "5+2*", "7+2-"])
    }

    @Test("A terabyte of contiguous pages is one run")
    func scalesWithExtents() {
        var m = RunMap<Int64>()
        let pages: UInt64 = 1 << 28
        m.update(0x10_0000, pages) { ($0 ?? 0) + 1 }
        #expect(m.runCount == 1)
        var p = RunMap<PFN>()
        for i: UInt64 in 0..<1000 { p.assign(i, 1, PFN(0x5000 + i)) }
        #expect(p.runCount == 1)
    }
}

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

/// RunMap against the plainest reference there is: a dictionary from key to value, over a
/// small key space so that runs meet, split and merge often, and with the chunks small enough
/// in count (thousands of runs) that chunk splits and merges happen too.
@Suite struct RunMapReferenceTests {
    struct Rng {
        var state: UInt64
        mutating func next(_ bound: UInt64) -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return (z ^ (z >> 31)) % bound
        }
    }

    @Test("assign, update and lookups agree with a dictionary", arguments: [1, 2, 3, 4] as [UInt64])
    func matchesDictionary(seed: UInt64) {
        var rng = Rng(state: seed)
        var map = RunMap<PFN>()
        var reference: [UInt64: UInt64] = [:]
        let keys: UInt64 = 20_000
        for step in 0..<6_000 {
            let start = rng.next(keys)
            let count = rng.next(4) == 0 ? 1 + rng.next(200) : 1
            let n = min(count, keys - start)
            switch rng.next(4) {
            case 0:
                map.assign(start, n, nil)
                for k in start..<start + n { reference[k] = nil }
            case 1:
                // Continuing values, so that neighbours merge.
                let base = 0x10_0000 + start + (rng.next(3) == 0 ? rng.next(1000) : 0)
                map.assign(start, n, PFN(base))
                for k in start..<start + n { reference[k] = base + (k - start) }
            default:
                // One key at a time, as the walks do.
                let v: PFN? = rng.next(3) == 0 ? nil : PFN(0x10_0000 + start)
                map.update(start, 1) { _ in v }
                reference[start] = v?.rawValue
            }
            if step % 500 == 0 { map._checkInvariants() }
        }
        map._checkInvariants()
        for k in 0..<keys {
            #expect(map.value(at: k)?.rawValue == reference[k], "key \(k)")
        }
        var covered: UInt64 = 0
        for r in map.runs { covered += r.count }
        #expect(covered == UInt64(reference.count))
        #expect(map.runCount > 300, "the test should exercise many chunks")
    }
}

/// The VMA tree against a page-by-page reference: random mmap and munmap calls, enough of them
/// that the chunks under the tree split and merge.
@Suite struct VMATreeReferenceTests {
    @Test("mmap and munmap agree with a page map", arguments: [1, 2, 3] as [UInt64])
    func matchesPages(seed: UInt64) {
        var rng = RunMapReferenceTests.Rng(state: seed)
        let mm = MM()
        var reference: [UInt64: UInt64] = [:]  // page -> VMA start page
        let pages: UInt64 = 8_000
        for _ in 0..<4_000 {
            let start = rng.next(pages)
            let n = min(1 + (rng.next(5) == 0 ? rng.next(300) : rng.next(3)), pages - start)
            let va = VAddr(0x1000_0000 + start << 12)
            let end = va + n << 12
            if rng.next(3) == 0 {
                mm.munmap(va, end)
                for p in start..<start + n { reference[p] = nil }
            } else {
                mm.mmap(VMA(start: va, end: end, flags: [], pgoff: 0))
                for p in start..<start + n { reference[p] = start }
            }
        }
        var seen: [UInt64: UInt64] = [:]
        var last: VAddr = 0
        for v in mm.vmas {
            #expect(v.start >= last && v.start < v.end)
            last = v.end
            for p in (v.start.rawValue - 0x1000_0000) >> 12..<(v.end.rawValue - 0x1000_0000) >> 12 { seen[p] = 1 }
        }
        #expect(Set(seen.keys) == Set(reference.keys))
        for p in reference.keys.sorted().prefix(2000) {
            let v = mm.findVMAIntersection(VAddr(0x1000_0000 + p << 12), VAddr(0x1000_0000 + (p + 1) << 12))
            #expect(v != nil && v!.start.rawValue <= 0x1000_0000 + p << 12, "page \(p)")
        }
    }
}

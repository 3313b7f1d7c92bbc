import Foundation
import Replay
import TestSupport
import Testing
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// SPEC-IOMMUFD §7's agreements on random traces: RAM-only traces whose requests all succeed
/// give the same chunks, return codes, charged pages (each engine in its own counter) and page
/// references on v6.18, iommufd and iommufd-compat; and acceptance never depends on engines.
@Suite struct IOMMUFDAgreementTests {
    static let engines = ["v6.18", "iommufd", "iommufd-compat"].compactMap(Engines.named)

    /// A RAM-only trace: anonymous, hugetlb and shared VMAs, scattered and contiguous ptes,
    /// touches, maps, and unmaps of exactly what was mapped.
    static func trace(seed: UInt64) -> [Statement] {
        var r = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x10_33F0)
        func pick<T>(_ xs: [T]) -> T { xs[Int(r.below(UInt64(xs.count)))] }
        let anon: UInt64 = 0x40_0000
        let shared: UInt64 = 0x80_0000
        let huge: UInt64 = 0x4000_0000
        var out: [Statement] = [
            .pageShift(12), .pfns(.ram, start: 0x1000, count: 0x400), .pool(start: 0x2000, count: 0x400),
            .pool(start: 0x4_0000, count: 0x800),
            .vma(VMASpec(start: anon, end: anon + (256 << 12), name: "guest RAM")),
            .vma(VMASpec(start: shared, end: shared + (64 << 12), flags: [.shared], name: "memfd")),
            .vma(VMASpec(start: huge, end: huge + (4 << 20), hugetlbSize: 2 << 20, name: "hugetlbfs")),
        ]
        let regions: [(UInt64, UInt64)] = [(anon, 256), (shared, 64), (huge, 1024)]
        for _ in 0..<r.below(8) {
            let (base, pages) = pick(regions.prefix(2).map { $0 })
            let at = r.below(pages)
            out.append(.pte(vaddr: base + at << 12, count: 1 + r.below(min(16, pages - at)), pfn: 0x1000 + r.below(0x300), readOnly: false))
        }
        var live: [(iova: UInt64, size: UInt64)] = []
        var nextIOVA: UInt64 = 0x10_0000
        for _ in 0..<(3 + r.below(10)) {
            let (base, pages) = pick(regions)
            let at = r.below(pages)
            let n = 1 + r.below(min(pages - at, 600))
            switch r.below(6) {
            case 0, 1, 2:
                out.append(.map(iova: nextIOVA, vaddr: base + at << 12, size: n << 12, access: pick([.read, [.read, .write]])))
                live.append((nextIOVA, n << 12))
                nextIOVA += (n + r.below(4)) << 12
            case 3 where !live.isEmpty:
                let m = live.remove(at: Int(r.below(UInt64(live.count))))
                out.append(.unmap(iova: m.iova, size: m.size))
            default:
                out.append(.touch(vaddr: base + at << 12, count: min(n, 32), write: r.chance(60)))
            }
        }
        return out
    }

    /// Every engine's outcomes as jsonl lines without the engine's name.
    struct Lines: ReplayObserver {
        var lines: [[String]] = Array(repeating: [], count: 3)
        var failed = false
        mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
            for (i, o) in outcomes.enumerated() {
                var j = JSONLObserver()
                j.request(event: event, engines: ["x"], outcomes: [o])
                lines[i].append(j.text)
                if o.ret < 0 { failed = true }
            }
        }
    }

    @Test("RAM-only traces without errors agree exactly on v6.18, iommufd and iommufd-compat", arguments: 0..<8)
    func ramOnly(batch: Int) throws {
        var compared = 0
        for seed in UInt64(batch * 250)..<UInt64(batch * 250 + 250) {
            var o = Lines()
            let report = try Replayer(engines: Self.engines).replay(statements: Self.trace(seed: seed), name: "seed \(seed)", observer: &o)
            guard !o.failed else { continue }
            compared += 1
            #expect(o.lines[1] == o.lines[0], "seed \(seed): iommufd differs from v6.18")
            #expect(o.lines[2] == o.lines[0], "seed \(seed): iommufd-compat differs from v6.18")
            #expect(report.divergenceCount == 0, "seed \(seed): references or accounting differ")
            #expect(report.violationCount == 0, "seed \(seed): \(report.violations.first.map { $0.violation.detail } ?? "")")
        }
        #expect(compared > 150, "only \(compared) of 250 traces ran without an error")
    }
}

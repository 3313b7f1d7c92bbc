import Foundation
import Replay
import Testing
import TestSupport
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// Seeded random traces, well formed but arbitrary: every engine replays them to the end or
/// reports a trace error; nothing traps. A failure prints the seed; the trace is kept.
@Suite struct RandomTraceTests {
    /// Small random traces over a few VMAs, pfn classes, pools and requests, with values near the
    /// edges (0, 2^64 - 4K, unaligned sizes, huge locked_vm).
    static func trace(seed: UInt64) -> [Statement] {
        var r = SplitMix64(seed: seed)
        let vmaBase: [UInt64] = [0x40_0000, 0x80_0000, 0x7F00_0000_0000]
        // Start from VMAs under every base, so that most ptes land in one.
        var out: [Statement] = [.pageShift(12)] + vmaBase.map { .vma(VMASpec(start: $0, end: $0 + (32 << 12))) }
        func pick<T>(_ xs: [T]) -> T { xs[Int(r.below(UInt64(xs.count)))] }
        if r.chance(20) { out.append(.dmaEntryLimit(r.below(4))) }
        // A 4 MiB BAR-like pfnmap on a 2 MiB boundary, for huge leaves and one-step extents.
        let bar: UInt64 = 0x7F00_0020_0000
        if r.chance(50) {
            out.append(.vma(VMASpec(start: bar, end: bar + (4 << 20), flags: [.io, .pfnmap, .shared, .linear], pgoff: pick([0, 0x200, 0x201]))))
        }
        for _ in 0..<(10 + r.below(40)) {
            switch r.below(20) {
            case 16: out.append(.thp(pick(THPSetting.allCases)))
            case 17: out.append(.touch(vaddr: pick(vmaBase + [bar]) + (r.below(8) << 12), count: 1 + r.below(8), write: r.chance(50)))
            case 18: out.append(.pte(vaddr: bar + (r.below(2) << 21), count: 512, pfn: r.below(4) << 9, readOnly: r.chance(30), leaf: .m2))
            case 19: out.append(.map(iova: 0x10_0000 + (r.below(4) << 20), vaddr: bar + (r.below(1024) << 12), size: (1 + r.below(1024)) << 12, access: pick([.read, [.read, .write]])))
            case 0: out.append(.memlock(r.chance(30) ? nil : r.below(64) << 12))
            case 1: out.append(.capIpcLock(r.chance(50)))
            case 2: out.append(.lockedVM(r.chance(10) ? UInt64(Int64.max) : r.below(100)))
            case 3: out.append(.disableHugepages(r.chance(50)))
            case 4: out.append(.pfns(pick([.ram, .reserved, .mmio]), start: r.below(0x100), count: 1 + r.below(32)))
            case 5: out.append(.pool(start: 0x100 + r.below(0x100), count: 1 + r.below(64)))
            case 6:
                let start = pick(vmaBase) + (r.below(16) << 12)
                let hugetlb: UInt64 = r.chance(15) ? 0x20_0000 : 0
                let s = hugetlb > 0 ? start & ~(hugetlb - 1) : start
                let flags = VMAFlagSet(rawValue: UInt8(r.below(64)))
                out.append(.vma(VMASpec(start: s, end: s + max(hugetlb, (1 + r.below(16)) << 12), read: r.chance(90), write: r.chance(80), flags: flags, hugetlb: hugetlb, pgoff: r.below(0x200))))
            case 7:
                let b = pick(vmaBase) + (r.below(16) << 12)
                out.append(.munmap(start: b, end: b + (1 + r.below(8)) << 12))
            case 8: out.append(.pte(vaddr: pick(vmaBase) + (r.below(8) << 12), count: 1 + r.below(4), pfn: r.chance(20) ? nil : r.below(0x200), readOnly: r.chance(30)))
            case 9: out.append(.zeroPage(0))
            case 10, 11, 12:
                let size = r.chance(10) ? r.below(0x3000) : (1 + r.below(16)) << 12
                let iova = r.chance(5) ? 0xFFFF_FFFF_FFFF_F000 : r.below(16) << 12
                out.append(.map(iova: iova, vaddr: pick(vmaBase) + (r.below(8) << 12), size: size, access: Access(rawValue: UInt8(r.below(4)))))
            case 13:
                out.append(.unmap(iova: r.chance(5) ? 0xFFFF_FFFF_FFFF_F000 : r.below(16) << 12, size: r.chance(10) ? r.below(0x3000) : (1 + r.below(16)) << 12))
            case 14: out.append(.pin(iova: r.below(16) << 12, count: r.below(4), access: Access(rawValue: UInt8(1 + r.below(3)))))
            default: out.append(.unpin(iova: r.below(16) << 12, count: r.below(4)))
            }
        }
        return out
    }

    /// Each engine's jsonl lines apart.
    struct PerEngine: ReplayObserver {
        var lines: [String: [String]] = [:]
        mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
            var j = JSONLObserver()
            for (name, o) in zip(engines, outcomes) {
                j.request(event: event, engines: ["x"], outcomes: [o])
                lines[name, default: []].append(j.text)
                j = JSONLObserver()
            }
        }
    }

    @Test("Random traces replay through every engine without a trap; fixed gives v4.16's outcomes and violations (A1)", arguments: 0..<8)
    func randomTraces(batch: Int) throws {
        let dir = Paths.scratch()
        var replayed = 0
        for seed in UInt64(batch * 250)..<UInt64(batch * 250 + 250) {
            let path = dir.appendingPathComponent("seed-\(seed).txt").path
            let w = try TraceWriter(path: path, form: .text)
            var written = 0
            for s in Self.trace(seed: seed) {
                // Statements the format itself refuses (say, a zero page outside a reserved
                // range) are left out: the point here is the world and the engines.
                do {
                    try w.write(s)
                    written += 1
                } catch {}
            }
            try w.finish()
            var observer = PerEngine()
            do {
                let report = try Replayer(engines: Engines.all).replay(path: path, observer: &observer)
                #expect(report.events == written, "seed \(seed)")
                #expect(observer.lines["fixed"] == observer.lines["v4.16"], "seed \(seed): fixed's outcomes differ from v4.16's")
                func violations(_ e: String) -> [String] {
                    report.violations.filter { $0.engine == e }.map { "\($0.event) \($0.violation.kind) \($0.violation.detail)" }
                }
                #expect(violations("fixed") == violations("v4.16"), "seed \(seed): fixed's violations differ from v4.16's")
                replayed += 1
            } catch {
                // A trace the world cannot follow (a touch or pte outside a VMA) is an input error.
                #expect(error.message.contains("cannot happen"), "seed \(seed): \(error)")
            }
        }
        #expect(replayed > 100)
    }
}

import Foundation
import Replay
import TestSupport
import Testing
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// Random traces over the world rules corrected in 2026-12 (SPEC-LATER D11-D13): read-only ram
/// ptes in private anonymous, hugetlb and mixedmap VMAs (pages another mapping may share),
/// BARs with declared 2 MiB leaves, BAR pages emptied after the first fault. What must hold
/// whatever the trace: the engines SPEC-LATER A2 says agree do, and no engine whose kernel
/// unshares ever hands the device a shared page.
@Suite struct SharedPageAgreementTests {
    /// Shared anonymous pages: only ever under read-only ptes in private VMAs.
    static let sharedAnon: ClosedRange<UInt64> = 0x1000...0x10FF
    /// A driver's pages in a private mixedmap VMA (not anonymous: unshared from 6.2 only).
    static let sharedDriver: ClosedRange<UInt64> = 0x1100...0x11FF
    /// Shared hugetlb pages, one 2 MiB page.
    static let sharedHuge: ClosedRange<UInt64> = 0x8000...0x81FF

    static let anon: UInt64 = 0x40_0000
    static let huge: UInt64 = 0x4000_0000
    static let mixed: UInt64 = 0x7F00_2000_0000
    static let bar: UInt64 = 0x7F00_0020_0000

    /// One trace; `withShared` false leaves out the shared anonymous and hugetlb pages and the
    /// external pins, so that v5.15 and v6.1 must agree on it.
    static func trace(seed: UInt64, withShared: Bool) -> [Statement] {
        var r = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 0x2026_12)
        func pick<T>(_ xs: [T]) -> T { xs[Int(r.below(UInt64(xs.count)))] }
        var out: [Statement] = [
            .pageShift(12), .thp(pick(THPMode.allCases)),
            .pfns(.ram, start: 0x1000, count: 0x200), .pfns(.ram, start: 0x3000, count: 0x100),
            .pfns(.ram, start: 0x8000, count: 0x200), .pfns(.mmio, start: 0x80000, count: 0x400),
            .pool(start: 0x2000, count: 1 + r.below(0x100)), .pool(start: 0x4000, count: 0x400),
            .vma(VMASpec(start: anon, end: anon + (32 << 12), name: "guest RAM")),
            .vma(VMASpec(start: mixed, end: mixed + (8 << 12), write: r.chance(50), flags: [.mixedmap], name: "driver")),
            .vma(VMASpec(start: bar, end: bar + (4 << 20), flags: [.io, .pfnmap, .shared, .linear], pgoff: 0x80000, name: "BAR")),
        ]
        var regions: [(base: UInt64, pages: UInt64)] = [(anon, 32), (mixed, 8), (bar, 1024)]
        for _ in 0..<r.below(6) {
            let at = r.below(32)
            let n = 1 + r.below(min(8, 32 - at))
            if withShared && r.chance(60) {
                out.append(.pte(vaddr: anon + at << 12, count: n, pfn: sharedAnon.lowerBound + r.below(0xF0), readOnly: true))
            } else {
                out.append(.pte(vaddr: anon + at << 12, count: n, pfn: 0x3000 + r.below(0xF0), readOnly: false))
            }
        }
        for _ in 0..<r.below(3) {
            let at = r.below(8)
            out.append(.pte(vaddr: mixed + at << 12, count: 1, pfn: sharedDriver.lowerBound + r.below(0x100), readOnly: true))
        }
        if withShared {
            out.append(.vma(VMASpec(start: huge, end: huge + (4 << 20), hugetlbSize: 2 << 20, name: "hugetlbfs")))
            if r.chance(70) { out.append(.pte(vaddr: huge, count: 512, pfn: sharedHuge.lowerBound, readOnly: true)) }
            regions.append((huge, 1024))
        }
        if r.chance(50) { out.append(.pte(vaddr: bar + (r.below(2) << 21), count: 512, pfn: 0x80000, readOnly: r.chance(30), leaf: .m2)) }
        // The leaf's pfns must be the BAR's at that place: pgoff-linear.
        if case let .pte(vaddr, count, _, ro, leaf) = out.last!, leaf == .m2 {
            out[out.count - 1] = .pte(vaddr: vaddr, count: count, pfn: 0x80000 + (vaddr - bar) >> 12, readOnly: ro, leaf: leaf)
        }
        var iovas: [UInt64] = []
        for _ in 0..<(4 + r.below(12)) {
            let (base, pages) = pick(regions)
            let at = r.below(pages)
            let n = 1 + r.below(min(pages - at, 600))
            switch r.below(10) {
            case 0..<5:
                let iova = r.below(64) << 22
                out.append(.map(iova: iova, vaddr: base + at << 12, size: n << 12, access: pick([.read, .read, [.read, .write]])))
                iovas.append(iova)
            case 5:
                out.append(.unmap(iova: iovas.isEmpty ? 0 : pick(iovas), size: 1 << 40))
            case 6 where withShared:
                out.append(.pin(iova: (iovas.isEmpty ? 0 : pick(iovas)) &+ r.below(4) << 12, count: 1 + r.below(4), access: .read))
            case 7:
                // A zap: a BAR page (or a RAM page) emptied after its VMA's first fault.
                out.append(.pte(vaddr: base + at << 12, count: min(n, 4), pfn: nil, readOnly: false))
            default:
                out.append(.touch(vaddr: base + at << 12, count: min(n, 16), write: r.chance(30)))
            }
        }
        return out
    }

    /// Every engine's outcomes, counters aside, as jsonl lines without the engine's name.
    struct Outcomes: ReplayObserver {
        var lines: [String: [String]] = [:]
        /// Frames each engine handed the device (map chunks and external pins).
        var frames: [String: [UInt64]] = [:]
        mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
            for (name, o) in zip(engines, outcomes) {
                var j = JSONLObserver()
                j.request(event: event, engines: ["x"], outcomes: [o])
                lines[name, default: []].append(j.text)
                switch o {
                case .map(_, let chunks, _):
                    for c in chunks { frames[name, default: []] += (0..<c.npage).map { c.pfn.rawValue + $0 } }
                case .pin(_, let pfns, _):
                    frames[name, default: []] += pfns.map(\.rawValue)
                default:
                    break
                }
            }
        }
    }

    func replay(_ statements: [Statement], seed: UInt64) throws -> Outcomes {
        var observer = Outcomes()
        _ = try Replayer(engines: Engines.all).replay(statements: statements, name: "seed \(seed)", observer: &observer)
        return observer
    }

    @Test("2026-12 world rules: A2 holds, fixed = v4.16, and unsharing engines never map a shared page", arguments: 0..<4)
    func agreement(batch: Int) throws {
        var sharedMappedOld = 0
        var sharedMappedDriver = 0
        for seed in UInt64(batch * 250)..<UInt64(batch * 250 + 250) {
            let withShared = seed % 2 == 0
            let o = try replay(Self.trace(seed: seed, withShared: withShared), seed: seed)
            #expect(o.lines["fixed"] == o.lines["v4.16"], "seed \(seed): fixed differs from v4.16")
            #expect(o.lines["v6.15"] == o.lines["v6.12"], "seed \(seed): v6.15 differs from v6.12 (no leaf holds ram)")
            #expect(o.lines["v6.18"] == o.lines["v6.15"], "seed \(seed): v6.18 differs from v6.15 (no reserved page, no top iova)")
            if !withShared {
                #expect(o.lines["v6.1"] == o.lines["v5.15"], "seed \(seed): v6.1 differs from v5.15 without shared anon pages")
            }
            for e in ["v6.1", "v6.12", "v6.15", "v6.18"] {
                let bad = (o.frames[e] ?? []).filter { Self.sharedAnon.contains($0) || Self.sharedHuge.contains($0) }
                #expect(bad.isEmpty, "seed \(seed): \(e) maps shared anonymous pages \(bad.prefix(4))")
            }
            for e in ["v6.12", "v6.15", "v6.18"] {
                let bad = (o.frames[e] ?? []).filter { Self.sharedDriver.contains($0) }
                #expect(bad.isEmpty, "seed \(seed): \(e) maps a shared driver page \(bad.prefix(4))")
            }
            if (o.frames["v5.15"] ?? []).contains(where: { Self.sharedAnon.contains($0) || Self.sharedHuge.contains($0) }) {
                sharedMappedOld += 1
            }
            if (o.frames["v6.1"] ?? []).contains(where: { Self.sharedDriver.contains($0) }) { sharedMappedDriver += 1 }
        }
        // Not vacuous: the kernels without the rule do map shared pages in these traces.
        #expect(sharedMappedOld > 20, "v5.15 mapped shared anonymous pages in \(sharedMappedOld) traces")
        #expect(sharedMappedDriver > 5, "v6.1 mapped shared driver pages in \(sharedMappedDriver) traces")
    }
}

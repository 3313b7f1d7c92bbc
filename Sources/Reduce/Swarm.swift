import TraceFormat
import TraceGen
import VFIOModel

/// Random, valid traces for `fuzz`, in the style of swarm testing: each trace switches a random
/// subset of features on, so that rare combinations are not drowned by the common ones. Trace
/// `index` of `seed` depends on nothing else: a finding is reproduced by its seed and index.
public enum Swarm {
    /// What a trace may hold.
    public enum Feature: String, CaseIterable, Sendable {
        case ramAnon = "ram-anon", ramShared = "ram-shared", hugetlb, zeroPage = "zero-page"
        case pfnmapLinear = "pfnmap-linear", pfnmapScattered = "pfnmap-scattered", mixedmap
        case reservedNeighbours = "reserved-neighbours", externalPins = "external-pins", memlock
        case disableHugepages = "disable-hugepages", churn, pfnZero = "pfn-zero", edges, hugeLeaves = "huge-leaves"
    }

    static let ram: UInt64 = 0x40_0000
    static let shared: UInt64 = 0x80_0000
    static let huge: UInt64 = 0x4000_0000
    static let bar: UInt64 = 0x7F00_0020_0000
    static let scatter: UInt64 = 0x7F00_1000_0000
    static let mixed: UInt64 = 0x7F00_2000_0000

    /// The random source of one trace.
    public static func rng(seed: UInt64, index: UInt64) -> SplitMix64 {
        var r = SplitMix64(seed: seed ^ 0x5eed_f022)
        for _ in 0..<2 { _ = r.next() }
        return SplitMix64(seed: r.next() &+ index &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Trace `index` of `seed`: its features and its statements, every one valid in order.
    public static func trace(seed: UInt64, index: UInt64) -> (features: [Feature], statements: [Statement]) {
        var r = rng(seed: seed, index: index)
        let on = Feature.allCases.filter { _ in r.chance(50) }
        func has(_ f: Feature) -> Bool { on.contains(f) }
        func pick<T>(_ xs: [T]) -> T { xs[Int(r.below(UInt64(xs.count)))] }
        var out: [Statement] = [.pageShift(12)]
        var regions: [(start: UInt64, pages: UInt64)] = []

        if has(.memlock) { out.append(.memlock(r.below(32) << 12)) }
        if has(.memlock) && r.chance(30) { out.append(.capIpcLock(true)) }
        if has(.disableHugepages) { out.append(.disableHugepages(true)) }
        if has(.hugeLeaves) { out.append(.thp(pick(THPMode.allCases))) }
        out.append(.pfns(.ram, start: 0x1000, count: 0x100))
        if has(.reservedNeighbours) { out.append(.pfns(.reserved, start: 0x1000 + r.below(0x100), count: 1 + r.below(4))) }
        if has(.zeroPage) {
            out.append(.pfns(.reserved, start: 0x800, count: 1))
            out.append(.zeroPage(0x800))
        }
        if has(.pfnZero) { out.append(.pfns(pick([.ram, .reserved, .mmio]), start: 0, count: 1 + r.below(4))) }
        out.append(.pool(start: 0x2000, count: r.below(64)))
        if has(.hugetlb) { out.append(.pool(start: 0x4000, count: 1024)) }

        func ptes(_ base: UInt64, pages: UInt64) {
            for _ in 0..<r.below(4) {
                let at = r.below(pages)
                let pfn = has(.pfnZero) && r.chance(30) ? r.below(4) : 0x1000 + r.below(0x100)
                out.append(.pte(vaddr: base + at << 12, count: 1 + r.below(min(8, pages - at)), pfn: pfn, readOnly: r.chance(30)))
            }
        }
        if has(.ramAnon) || on.isEmpty {
            out.append(.vma(VMASpec(start: ram, end: ram + (64 << 12), name: "guest RAM")))
            ptes(ram, pages: 64)
            regions.append((ram, 64))
        }
        if has(.ramShared) {
            out.append(.vma(VMASpec(start: shared, end: shared + (16 << 12), flags: [.shared], name: "memfd RAM")))
            ptes(shared, pages: 16)
            regions.append((shared, 16))
        }
        if has(.hugetlb) {
            out.append(.vma(VMASpec(start: huge, end: huge + (4 << 20), hugetlbSize: 2 << 20, name: "hugetlbfs")))
            regions.append((huge, 1024))
        }
        if has(.pfnmapLinear) || has(.hugeLeaves) {
            let pgoff: UInt64 = has(.pfnZero) ? 0 : pick([0x80000, 0x80001, 0x1000])
            let flags: VMAFlags = r.chance(20) ? [.io, .pfnmap, .shared, .linear, .hugepage] : [.io, .pfnmap, .shared, .linear]
            out.append(
                .vma(VMASpec(start: bar, end: bar + (4 << 20), read: true, write: r.chance(90), flags: flags, pgoff: pgoff, name: "BAR")))
            if has(.hugeLeaves) && pgoff & 0x1ff == 0 {
                out.append(.pte(vaddr: bar, count: 512, pfn: pgoff, readOnly: r.chance(20), leaf: .m2))
            }
            regions.append((bar, 1024))
        }
        if has(.pfnmapScattered) {
            out.append(
                .vma(VMASpec(start: scatter, end: scatter + (8 << 12), flags: [.io, .pfnmap, .shared], pgoff: 0x90000, name: "scatter")))
            for i in 0..<r.below(8) {
                out.append(.pte(vaddr: scatter + i << 12, count: 1, pfn: 0x90000 + r.below(16), readOnly: r.chance(30)))
            }
            regions.append((scatter, 8))
        }
        if has(.mixedmap) {
            out.append(.vma(VMASpec(start: mixed, end: mixed + (8 << 12), flags: [.mixedmap], name: "mixedmap")))
            ptes(mixed, pages: 8)
            regions.append((mixed, 8))
        }
        if regions.isEmpty { regions.append((ram, 64)) }

        var iovas: [UInt64] = []
        for _ in 0..<(3 + r.below(12)) {
            let (base, pages) = pick(regions)
            let at = r.below(pages)
            let n = 1 + r.below(min(pages - at, 64))
            switch r.below(10) {
            case 0..<5:
                let iova = has(.edges) && r.chance(20) ? 0xFFFF_FFFF_FFFF_F000 : r.below(64) << 16
                out.append(.map(iova: iova, vaddr: base + at << 12, size: n << 12, access: pick([.read, .write, [.read, .write]])))
                iovas.append(iova)
            case 5, 6:
                let iova = iovas.isEmpty ? 0 : pick(iovas)
                if has(.edges) && r.chance(10) {
                    out.append(.unmapAll(iova: 0, size: 0))
                } else {
                    out.append(.unmap(iova: iova, size: has(.edges) && r.chance(20) ? 0 &- iova : n << 12))
                }
            case 7 where has(.externalPins):
                out.append(
                    .pin(
                        iova: (iovas.isEmpty ? 0 : pick(iovas)) &+ r.below(4) << 12, count: 1 + r.below(4),
                        access: pick([.read, [.read, .write]])))
            case 8 where has(.externalPins):
                out.append(.unpin(iova: (iovas.isEmpty ? 0 : pick(iovas)) &+ r.below(4) << 12, count: 1 + r.below(4)))
            case 8 where has(.churn), 9 where has(.churn):
                if r.chance(20) {
                    out.append(.munmap(start: base + at << 12, end: base + (at + n) << 12))
                } else if r.chance(50) {
                    out.append(.pte(vaddr: base + at << 12, count: n, pfn: nil, readOnly: false))
                } else {
                    out.append(.touch(vaddr: base + at << 12, count: n, write: r.chance(50)))
                }
            default:
                out.append(.touch(vaddr: base + at << 12, count: n, write: r.chance(70)))
            }
        }
        var rules = TraceRules()
        return (on, out.filter { rules.problem($0) == nil })
    }
}

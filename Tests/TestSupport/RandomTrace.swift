import TraceFormat
import TraceGen
import VFIOModel

/// Seeded random traces for the tests that compare engines or check that nothing traps.
public enum RandomTrace {
    /// Small random traces over a few VMAs, pfn classes, pools and requests, with values near the
    /// edges (0, 2^64 - 4K, unaligned sizes, huge locked_vm).
    public static func statements(seed: UInt64) -> [Statement] {
        var r = SplitMix64(seed: seed)
        let vmaBase: [UInt64] = [0x40_0000, 0x80_0000, 0x7F00_0000_0000]
        // Start from VMAs under every base, so that most ptes land in one.
        var out: [Statement] = [.pageShift(12)] + vmaBase.map { .vma(VMASpec(start: $0, end: $0 + (32 << 12))) }
        func pick<T>(_ xs: [T]) -> T { xs[Int(r.below(UInt64(xs.count)))] }
        if r.chance(20) { out.append(.dmaEntryLimit(r.below(4))) }
        // A 4 MiB BAR-like pfnmap on a 2 MiB boundary, for huge leaves and one-step extents.
        let bar: UInt64 = 0x7F00_0020_0000
        if r.chance(50) {
            out.append(
                .vma(VMASpec(start: bar, end: bar + (4 << 20), flags: [.io, .pfnmap, .shared, .linear], pgoff: pick([0, 0x200, 0x201]))))
        }
        for _ in 0..<(10 + r.below(40)) {
            switch r.below(20) {
            case 16: out.append(.thp(pick(THPMode.allCases)))
            case 17: out.append(.touch(vaddr: pick(vmaBase + [bar]) + (r.below(8) << 12), count: 1 + r.below(8), write: r.chance(50)))
            case 18: out.append(.pte(vaddr: bar + (r.below(2) << 21), count: 512, pfn: r.below(4) << 9, readOnly: r.chance(30), leaf: .m2))
            case 19:
                out.append(
                    .map(
                        iova: 0x10_0000 + (r.below(4) << 20), vaddr: bar + (r.below(1024) << 12), size: (1 + r.below(1024)) << 12,
                        access: pick([.read, [.read, .write]])))
            case 0: out.append(.memlock(r.chance(30) ? nil : r.below(64) << 12))
            case 1: out.append(.capIpcLock(r.chance(50)))
            case 2 where r.chance(30): out.append(.userLockedVM(r.chance(10) ? UInt64(Int64.max) : r.below(100)))
            case 2: out.append(.lockedVM(r.chance(10) ? UInt64(Int64.max) : r.below(100)))
            case 3: out.append(.disableHugepages(r.chance(50)))
            case 4: out.append(.pfns(pick([.ram, .reserved, .mmio]), start: r.below(0x100), count: 1 + r.below(32)))
            case 5: out.append(.pool(start: 0x100 + r.below(0x100), count: 1 + r.below(64)))
            case 6:
                let start = pick(vmaBase) + (r.below(16) << 12)
                let hugetlb: UInt64 = r.chance(15) ? 0x20_0000 : 0
                let s = hugetlb > 0 ? start & ~(hugetlb - 1) : start
                let flags = VMAFlags(rawValue: UInt8(r.below(64)))
                out.append(
                    .vma(
                        VMASpec(
                            start: s, end: s + max(hugetlb, (1 + r.below(16)) << 12), read: r.chance(90), write: r.chance(80), flags: flags,
                            hugetlbSize: hugetlb, pgoff: r.below(0x200))))
            case 7:
                let b = pick(vmaBase) + (r.below(16) << 12)
                out.append(.munmap(start: b, end: b + (1 + r.below(8)) << 12))
            case 8:
                out.append(
                    .pte(
                        vaddr: pick(vmaBase) + (r.below(8) << 12), count: 1 + r.below(4), pfn: r.chance(20) ? nil : r.below(0x200),
                        readOnly: r.chance(30)))
            case 9: out.append(.zeroPage(0))
            case 10, 11, 12:
                let size = r.chance(10) ? r.below(0x3000) : (1 + r.below(16)) << 12
                let iova = r.chance(5) ? 0xFFFF_FFFF_FFFF_F000 : r.below(16) << 12
                out.append(
                    .map(iova: iova, vaddr: pick(vmaBase) + (r.below(8) << 12), size: size, access: Access(rawValue: UInt8(r.below(4)))))
            case 13 where r.chance(10):
                out.append(.unmapAll(iova: r.chance(80) ? 0 : 0x1000, size: 0))
            case 13:
                out.append(
                    .unmap(
                        iova: r.chance(5) ? 0xFFFF_FFFF_FFFF_F000 : r.below(16) << 12,
                        size: r.chance(10) ? r.below(0x3000) : (1 + r.below(16)) << 12))
            case 14: out.append(.pin(iova: r.below(16) << 12, count: r.below(4), access: Access(rawValue: UInt8(1 + r.below(3)))))
            default: out.append(.unpin(iova: r.below(16) << 12, count: r.below(4)))
            }
        }
        return out
    }
}

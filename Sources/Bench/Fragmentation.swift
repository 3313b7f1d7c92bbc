import Replay
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// The shapes of a fragmented address space that once cost the square of their size (issue
/// #17): each case writes the trace for n, n/2, n/4 and n/8 statements, replays it through
/// v4.16 from the binary file as `replay --engines old` would, and reports each time and the
/// ratio of each doubling (about 2 when the cost grows n log n, 4 when it grows n²).
enum Fragmentation {
    static let base: UInt64 = 0x7F00_0000_0000
    static let ram: UInt64 = 0x10_0000

    /// One-page ptes on every other frame (so none merge), in the given order, then one map
    /// over them all and its unmap: v4.16 maps and unmaps n one-page chunks.
    static func ptes(_ n: UInt64, order: Order) -> [Statement] {
        var out: [Statement] = [.memlock(nil), .pfns(.ram, start: ram, count: 2 * n)]
        out.append(.vma(VMASpec(start: base, end: base + n << 12, name: "[anon]")))
        for i in order.indices(n) {
            out.append(.pte(vaddr: base + i << 12, count: 1, pfn: ram + 2 * i, readOnly: false))
        }
        out.append(.map(iova: 0, vaddr: base, size: n << 12, access: [.read, .write]))
        out.append(.unmap(iova: 0, size: n << 12))
        return out
    }

    /// n one-page VMAs with a page of hole between each, in random order; then one map over
    /// the first (the address space is built, nothing else).
    static func vmas(_ n: UInt64) -> [Statement] {
        var out: [Statement] = []
        for i in Order.random.indices(n) {
            out.append(.vma(VMASpec(start: base + i << 13, end: base + i << 13 + 4096, name: "[anon]")))
        }
        return out
    }

    /// n one-page maps at descending iovas over one present RAM run: n dmas in the list.
    static func mapsDescending(_ n: UInt64) -> [Statement] {
        var out: [Statement] = [.memlock(nil), .pfns(.ram, start: ram, count: n)]
        out.append(.vma(VMASpec(start: base, end: base + n << 12, name: "[anon]")))
        out.append(.pte(vaddr: base, count: n, pfn: ram, readOnly: false))
        for i in (0..<n).reversed() {
            out.append(.map(iova: i << 13, vaddr: base + i << 12, size: 4096, access: [.read, .write]))
        }
        return out
    }

    /// A read-only map of never-touched anonymous memory, n pages, and its unmap: v4.16 maps
    /// every page to the zero page, n one-page chunks.
    static func zeroPage(_ n: UInt64) -> [Statement] {
        [
            .pfns(.reserved, start: 0x1000, count: 1), .zeroPage(0x1000),
            .vma(VMASpec(start: base, end: base + n << 12, name: "[anon]")),
            .map(iova: 0, vaddr: base, size: n << 12, access: .read), .unmap(iova: 0, size: n << 12),
        ]
    }

    enum Order {
        case ascending, descending, random
        func indices(_ n: UInt64) -> [UInt64] {
            switch self {
            case .ascending: return Array(0..<n)
            case .descending: return Array((0..<n).reversed())
            case .random:
                var all = Array(0..<n)
                var rng = SplitMix64(seed: 1)
                for i in stride(from: all.count - 1, to: 0, by: -1) {
                    all.swapAt(i, Int(rng.next() % UInt64(i + 1)))
                }
                return all
            }
        }
    }

    /// A case replaying `build(n)` for n/8 ... n through v4.16 and reporting the doubling table.
    static func bench(_ name: String, _ what: String, n: UInt64, _ build: @escaping @Sendable (UInt64) -> [Statement]) -> BenchCase {
        BenchCase(name: name, what: what) { runs, scratch in
            var figures: [(String, String)] = []
            var previous: Int64?
            for shift: UInt64 in [3, 2, 1, 0] {
                let size = n >> shift
                let path = scratch + "/\(name)-\(size).vptr"
                let w = try TraceWriter(path: path, form: .binary)
                for s in build(size) { try w.write(s) }
                try w.finish()
                let t = try measure(runs) { _ = try replay(path, [V4_16()]) }
                var line = seconds(t.median)
                if let previous { line += " (×" + formatFixed(Double(t.median) / Double(previous), 2) + ")" }
                figures.append(("n=\(size) wall (median)", line))
                previous = t.median
            }
            return figures
        }
    }
}

let fragmentationCases: [BenchCase] = [
    Fragmentation.bench(
        "frag-pte-ascending", "one-page pte runs in ascending order, then a map over them and its unmap (v4.16)",
        n: 1 << 20
    ) { Fragmentation.ptes($0, order: .ascending) },
    Fragmentation.bench(
        "frag-pte-descending", "one-page pte runs in descending order, then a map over them and its unmap (v4.16)",
        n: 1 << 20
    ) { Fragmentation.ptes($0, order: .descending) },
    Fragmentation.bench(
        "frag-pte-random", "one-page pte runs in random order, then a map over them and its unmap (v4.16)",
        n: 1 << 20
    ) { Fragmentation.ptes($0, order: .random) },
    Fragmentation.bench("frag-vmas", "one-page VMAs declared in random order (v4.16)", n: 1 << 20) {
        Fragmentation.vmas($0)
    },
    Fragmentation.bench("frag-maps-descending", "one-page maps at descending iovas, left mapped (v4.16)", n: 100_000) {
        Fragmentation.mapsDescending($0)
    },
    Fragmentation.bench(
        "zero-page-4g", "a read-only map of 4 GiB of untouched anonymous memory and its unmap (v4.16: zero-page chunks)",
        n: 1 << 20
    ) { Fragmentation.zeroPage($0) },
]

import TraceFormat
import VFIOModel

/// The per-operation cost model of docs/COST.md: estimated kernel time from the cost counters.
///
/// Calibrated so that v4.16 mapping the seed's 16 GiB BAR (4,194,304 pages, each a failed GUP,
/// an mmap_sem round trip, a find_vma and the walk's own checks) comes to about 0.4 s, the
/// figure in the patch message, and v4.17-rc1's single step to about a microsecond; and so
/// that 6.15 and 6.18 land within 25 % of 6.18's published 16 GiB THP map and unmap times.
public enum CostModel {
    /// Nanoseconds per counted operation. A new counter does not compile until it has one.
    public static func weight(_ c: Counter) -> Int {
        switch c {
        case .vaddr_get_pfn: 5
        case .get_user_pages: 40
        case .gup_pages: 5
        case .follow_pfn: 30
        case .mmap_lock: 15
        case .find_vma: 25
        case .iommu_map: 1000
        case .pages_walked: 5
        case .faults: 500
        case .put_pfn: 22
        case .unpin_range: 100
        case .unpin_range_pages: 1
        case .iova_to_phys: 10
        case .iommu_unmap: 500
        case .vfio_lock_acct: 50
        }
    }

    /// Estimated kernel time in nanoseconds for these counters.
    public static func estimate(_ c: CostCounters) -> Int {
        Counter.allCases.reduce(0) { $0 + c[$1] * weight($1) }
    }

    /// Each counter's share: count, cost per operation, total nanoseconds.
    public static func breakdown(_ c: CostCounters) -> [(counter: String, count: Int, perOp: Int, ns: Int)] {
        Counter.allCases.map { ($0.rawValue, c[$0], weight($0), c[$0] * weight($0)) }
    }

    /// `377.5 ms`, `1.1 µs`: a duration for people.
    public static func human(_ ns: Int) -> String {
        switch ns {
        case ..<1000: return "\(ns) ns"
        case ..<1_000_000: return formatFixed(Double(ns) / 1e3, 1) + " µs"
        case ..<1_000_000_000: return formatFixed(Double(ns) / 1e6, 1) + " ms"
        default: return formatFixed(Double(ns) / 1e9, 1) + " s"
        }
    }
}

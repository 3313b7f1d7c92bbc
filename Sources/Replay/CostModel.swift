import VFIOModel

/// The per-operation cost model of docs/COST.md: estimated kernel time from the cost counters.
///
/// Calibrated so that v4.16 mapping the seed's 16 GiB BAR (4,194,304 pages, each a failed GUP,
/// an mmap_sem round trip, a find_vma and the walk's own checks) comes to about 0.4 s, the
/// figure in the patch message, and v4.17-rc1's single step to about a microsecond.
public enum CostModel {
    /// Nanoseconds per counted operation, in the counters' report order.
    public static let nanoseconds: [(counter: String, ns: Int)] = [
        ("vaddr_get_pfn", 5),
        ("get_user_pages", 40),
        ("follow_pfn", 30),
        ("mmap_lock", 15),
        ("find_vma", 25),
        ("iommu_map", 1000),
        ("pages_walked", 10),
        ("faults", 500),
        ("put_pfn", 15),
        ("iova_to_phys", 20),
        ("iommu_unmap", 500),
        ("vfio_lock_acct", 50),
    ]

    /// Estimated kernel time in nanoseconds for these counters.
    public static func estimate(_ c: CostCounters) -> Int {
        breakdown(c).reduce(0) { $0 + $1.ns }
    }

    /// Each counter's share: count, cost per operation, total nanoseconds.
    public static func breakdown(_ c: CostCounters) -> [(counter: String, count: Int, perOp: Int, ns: Int)] {
        let counts = Dictionary(uniqueKeysWithValues: c.named.map { ($0.name, $0.value) })
        return nanoseconds.map { entry in
            let n = counts[entry.counter] ?? 0
            return (entry.counter, n, entry.ns, n * entry.ns)
        }
    }

    /// `398.5 ms`, `1.2 µs`: a duration for people.
    public static func human(_ ns: Int) -> String {
        switch ns {
        case ..<1000: return "\(ns) ns"
        case ..<1_000_000: return fixed(Double(ns) / 1e3) + " µs"
        case ..<1_000_000_000: return fixed(Double(ns) / 1e6) + " ms"
        default: return fixed(Double(ns) / 1e9) + " s"
        }
    }

    private static func fixed(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

import Reduce
import Replay
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// One benchmark: what it measures and how, run in a process of its own so that its peak RSS
/// is its own.
public struct BenchCase: Sendable {
    /// The name `--case` takes.
    public var name: String
    /// What the case measures, one line.
    public var what: String
    /// Runs the case `runs` times and returns its figures as `key=value` pairs.
    public var run: @Sendable (_ runs: Int, _ scratch: String) throws -> [(String, String)]

    /// Every case, in the order `pinreplay bench` runs them.
    public static let all: [BenchCase] =
        [barWalk, gpuBoot, terabyteGuest, viommuChurn, decode, fuzzRate, reduceBoot, cEngines] + fragmentationCases
}

/// Wall time of `body`, in nanoseconds.
func timed(_ body: () throws -> Void) rethrows -> Int64 {
    let clock = ContinuousClock()
    let start = clock.now
    try body()
    let d = clock.now - start
    return d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
}

/// Minimum and median wall time of `runs` runs of `body`, in nanoseconds; what `setup` makes
/// for each run is built outside the time.
func measure<T>(_ runs: Int, setup: () throws -> T, _ body: (T) throws -> Void) rethrows -> (min: Int64, median: Int64) {
    var times: [Int64] = []
    for _ in 0..<runs {
        let input = try setup()
        times.append(try timed { try body(input) })
    }
    times.sort()
    return (times[0], times[times.count / 2])
}

/// Minimum and median wall time of `runs` runs of `body`, in nanoseconds.
func measure(_ runs: Int, _ body: () throws -> Void) rethrows -> (min: Int64, median: Int64) {
    try measure(runs, setup: {}) { _ in try body() }
}

func seconds(_ ns: Int64) -> String { formatFixed(Double(ns) / 1e9, 3) + " s" }

/// Generates a profile into `path` (not timed).
func generate(_ c: GenConfig, to path: String) throws {
    var g = try BootGenerator(c)
    let w = try TraceWriter(path: path, form: .binary)
    try g.run { s throws(TraceError) in try w.write(s) }
    try w.finish()
}

func replay(_ path: String, _ engines: [any Engine]) throws -> TraceReport {
    var observer = NoObserver()
    return try Replayer(engines: engines).replay(path: path, observer: &observer)
}

let barWalk = BenchCase(
    name: "bar-walk",
    what: "ns per page that v4.16 walks mapping the seed's 16 GiB BAR (the map request alone)"
) { runs, _ in
    var figures: [(String, String)] = []
    for engine in [V4_16() as any Engine, V4_17_rc1()] {
        var outcomes: [RequestOutcome] = []
        // Only the map request is timed: the host is built outside.
        let (lo, med) = measure(runs) { () -> Host in
            let h = Host(engine: engine)
            h.mm.mmap(VMA(start: 0x7F00_0000_0000, end: 0x7F04_0000_0000, flags: [.io, .pfnmap, .linear], pgoff: 0x380_0000))
            return h
        } _: { (h: Host) in
            outcomes.append(h.vfio_dma_do_map(0x1_0000_0000, 0x7F00_0000_0000, 16 << 30, [.IOMMU_READ, .IOMMU_WRITE]))
        }
        for out in outcomes {
            guard case .map(0, let chunks, _) = out, chunks.count == 1 else { throw GenError("the BAR map failed") }
        }
        if engine.name == "v4.16" {
            figures.append(("v4.16 ns/page (min)", formatFixed(Double(lo) / 4_194_304, 2)))
            figures.append(("v4.16 ns/page (median)", formatFixed(Double(med) / 4_194_304, 2)))
        } else {
            figures.append(("v4.17-rc1 whole map (median)", "\(med) ns"))
        }
    }
    return figures
}

let gpuBoot = BenchCase(
    name: "gpu-16g-bar",
    what: "replay of the gpu-16g-bar profile through all engines"
) { runs, scratch in
    let path = scratch + "/gpu-16g-bar.vptr"
    try generate(try profile("gpu-16g-bar"), to: path)
    var pages = 0
    let t = try measure(runs) { pages = try replay(path, Engines.all).summaries.reduce(0) { $0 + $1.counters.pages_walked } }
    return [("wall (min)", seconds(t.min)), ("wall (median)", seconds(t.median)), ("pages walked, all engines", "\(pages)")]
}

let terabyteGuest = BenchCase(
    name: "hugetlb-1t",
    what: "replay of a 1 TiB guest on 1 GiB hugetlbfs pages through all engines"
) { runs, scratch in
    var c = try profile("hugetlb-1g-64g")
    c.ram = 1 << 40
    let path = scratch + "/hugetlb-1t.vptr"
    try generate(c, to: path)
    let t = try measure(runs) { _ = try replay(path, Engines.all) }
    return [("wall (min)", seconds(t.min)), ("wall (median)", seconds(t.median))]
}

let viommuChurn = BenchCase(
    name: "viommu-churn",
    what: "requests per second per engine: 1,000,000 IOTLB maps and their unmaps (64 MiB guest)"
) { runs, scratch in
    var c = try profile("viommu-churn")
    c.ram = 64 << 20
    c.requests = 1_000_000
    let path = scratch + "/viommu-1m.vptr"
    try generate(c, to: path)
    var figures: [(String, String)] = []
    for engine in Engines.all {
        var requests = 0
        let t = try measure(runs) { requests = try replay(path, [engine]).requests }
        figures.append(("\(engine.name) requests/s (median)", "\(Int64(Double(requests) / (Double(t.median) / 1e9)))"))
        figures.append(("\(engine.name) requests", "\(requests)"))
    }
    return figures
}

let decode = BenchCase(
    name: "decode",
    what: "binary reader throughput (MB/s of decoded statements) against zstd -d on the same file"
) { runs, scratch in
    var c = try profile("viommu-churn")
    c.ram = 64 << 20
    c.requests = 2_000_000
    let path = scratch + "/decode.vptr"
    try generate(c, to: path)
    var bytes: UInt64 = 0
    let ours = try measure(runs) {
        let r = try TraceReader(path: path)
        while let _ = try r.next() {}
        bytes = r.decodedBytes
    }
    let theirs = try measure(runs) { try runZstd(path) }
    let ourMBs = Double(bytes) / (Double(ours.median) / 1e9) / 1e6
    let theirMBs = Double(bytes) / (Double(theirs.median) / 1e9) / 1e6
    return [
        ("decoded bytes", "\(bytes)"), ("pinreplay MB/s (median)", formatFixed(ourMBs, 1)),
        ("zstd -d MB/s (median)", formatFixed(theirMBs, 1)), ("ratio pinreplay/zstd", formatFixed(ourMBs / theirMBs, 2)),
    ]
}

let fuzzRate = BenchCase(
    name: "fuzz",
    what: "swarm traces per minute on one core through v4.16 and v4.17-rc1 (finding and reducing included)"
) { runs, _ in
    let count: UInt64 = 2000
    let fuzzer = Fuzzer(engines: [V4_16(), V4_17_rc1()], seed: 1, jobs: 1)
    let t = measure(runs) {
        var found: [Fuzzer.Found] = []
        for i in 0..<count { fuzzer.run(index: i, into: &found) }
    }
    return [("traces/minute (median)", "\(Int64(Double(count) / (Double(t.median) / 60e9)))")]
}

let reduceBoot = BenchCase(
    name: "reduce",
    what: "reduce gpu-16g-bar to the v4.17-rc1 zero-page underflow (v4.16 against v4.17-rc1, all cores)"
) { runs, scratch in
    let path = scratch + "/gpu-16g-bar.vptr"
    try generate(try profile("gpu-16g-bar"), to: path)
    let reader = try TraceReader(path: path)
    var statements: [Statement] = []
    while let s = try reader.next() { statements.append(s) }
    let reducer = Reducer(
        engines: [V4_16(), V4_17_rc1()], keep: .violation(.refcountUnderflow, engine: "v4.17-rc1"), jobs: 2)
    var left = 0
    let t = measure(runs) { left = reducer.reduce(statements).count }
    return [("wall (median)", seconds(t.median)), ("statements", "\(statements.count) → \(left)")]
}

func profile(_ name: String) throws -> GenConfig {
    guard let p = Profile.named(name) else { throw GenError("no profile \(name)") }
    return p.defaults
}

/// `zstd -d -c FILE > /dev/null`.
func runZstd(_ path: String) throws {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    let argv = ["zstd", "-q", "-d", "-c", path]
    let cargs = argv.map { strdup($0) } + [nil]
    defer { for a in cargs { free(a) } }
    guard posix_spawnp(&pid, "zstd", &actions, nil, cargs, environ) == 0 else { throw GenError("cannot run zstd") }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    guard status == 0 else { throw GenError("zstd -d failed") }
}

import CEngines
import Foundation
import Isolation
import Replay
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// One of the project's C renderings (`c-v4.16.c`), found from this file in a source tree.
func cRendering(_ file: String = "c-v4.16.c") throws -> String {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "../../Tests/Fixtures/c-engines/\(file)"
    ).standardized.path
    guard FileManager.default.fileExists(atPath: path) else {
        throw GenError("c-engines needs the source tree: \(path) is missing")
    }
    return path
}

let cEngines = BenchCase(
    name: "c-engines",
    what:
        "v4.16 in Swift, its C rendering in process and in a sandboxed worker (gpu-16g-bar, 100,000 viommu-churn requests); every era's Swift engine beside its C rendering per page (gpu-16g-bar, a 16 GiB hugetlb guest)"
) { runs, scratch in
    let path = scratch + "/gpu-16g-bar.vptr"
    try generate(try profile("gpu-16g-bar"), to: path)
    let compiled = try CEngineLoader.compile(path: try cRendering(), name: "c-v4.16", cache: scratch + "/cache")
    let variants: [(String, any Engine)] = [
        ("swift v4.16", V4_16()),
        ("C in process", try CEngineLoader.open(compiled)),
        ("C isolated", IsolatedCEngine(compiled, kernelAPI: nil, sandbox: true, timeout: 600)),
    ]
    var figures: [(String, String)] = []
    var medians: [Int64] = []
    var pages: [Int] = []
    for (label, engine) in variants {
        var walked = 0
        let t = try measure(runs) { walked = try replay(path, [engine]).summaries[0].counters.pages_walked }
        figures.append(("\(label) wall (median)", seconds(t.median)))
        medians.append(t.median)
        pages.append(walked)
    }
    // The same work each way, or the times compare nothing.
    guard pages.allSatisfy({ $0 == pages[0] }) else { throw GenError("the variants walked different pages: \(pages)") }
    figures.append(("pages walked, each", "\(pages[0])"))
    figures.append(("C in process / swift", formatFixed(Double(medians[1]) / Double(medians[0]), 2)))
    figures.append(("C isolated / C in process", formatFixed(Double(medians[2]) / Double(medians[1]), 2)))
    // Many small requests: the worker's line per statement is most of the cost here.
    var c = try profile("viommu-churn")
    c.ram = 64 << 20
    c.requests = 100_000
    let churn = scratch + "/viommu-100k.vptr"
    try generate(c, to: churn)
    var perRequest: [Double] = []
    for (label, engine) in variants.dropFirst() {
        var requests = 0
        let t = try measure(runs) { requests = try replay(churn, [engine]).requests }
        let ns = Double(t.median) / Double(max(requests, 1))
        perRequest.append(ns)
        figures.append(("churn \(label) µs/request (median)", formatFixed(ns / 1e3, 2)))
    }
    figures.append(("churn C isolated / C in process", formatFixed(perRequest[1] / perRequest[0], 2)))
    figures += try eraFigures(runs, scratch, bar: path)
    return figures
}

/// Each era's Swift engine and its C rendering in process, side by side on the same traces:
/// wall time per page pinned (the whole replay: decoding and the world are the same work for
/// both), and the ratio.
func eraFigures(_ runs: Int, _ scratch: String, bar: String) throws -> [(String, String)] {
    var huge = try profile("hugetlb-1g-64g")
    huge.ram = 16 << 30
    let hugetlb = scratch + "/hugetlb-1g-16g.vptr"
    try generate(huge, to: hugetlb)
    let eras: [(any Engine, String, KernelAPI)] = [
        (V4_16(), "c-v4.16.c", .v4_16), (V5_15(), "c-v5.15.c", .v5_15), (V6_1(), "c-v5.15.c", .v6_1),
        (V6_12(), "c-v6.12.c", .v6_12), (V6_15(), "c-v6.15.c", .v6_15), (V6_18(), "c-v6.18.c", .v6_18),
    ]
    var figures: [(String, String)] = []
    for (swift, file, api) in eras {
        let c = try CEngineLoader.load(path: try cRendering(file), name: "c-\(swift.name)", kernelAPI: api, cache: scratch + "/cache")
        for (label, trace) in [("BAR", bar), ("hugetlb 16G", hugetlb)] {
            var ns: [Double] = []
            var pages: [UInt64] = []
            for engine in [swift, c as any Engine] {
                var pinned: UInt64 = 0
                let t = try measure(runs) { pinned = try replay(trace, [engine]).summaries[0].pagesPinned }
                ns.append(Double(t.median) / Double(max(pinned, 1)))
                pages.append(pinned)
            }
            guard pages[0] == pages[1] else { throw GenError("\(swift.name) and its C rendering pinned \(pages) pages on \(label)") }
            figures.append(("\(api.rawValue) \(label): swift, C ns/page", formatFixed(ns[0], 1) + ", " + formatFixed(ns[1], 1)))
            figures.append(("\(api.rawValue) \(label): C / swift", formatFixed(ns[1] / ns[0], 2)))
        }
    }
    return figures
}

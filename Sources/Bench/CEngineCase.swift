import CEngines
import Foundation
import Isolation
import Replay
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// The project's C rendering of v4.16, found from this file in a source tree.
func cRendering() throws -> String {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "../../Tests/Fixtures/c-engines/c-v4.16.c"
    ).standardized.path
    guard FileManager.default.fileExists(atPath: path) else {
        throw GenError("c-engines needs the source tree: \(path) is missing")
    }
    return path
}

let cEngines = BenchCase(
    name: "c-engines",
    what: "v4.16 in Swift, its C rendering in process and the same C in a sandboxed worker: gpu-16g-bar, then 100,000 viommu-churn requests"
) { runs, scratch in
    let path = scratch + "/gpu-16g-bar.vptr"
    try generate(try profile("gpu-16g-bar"), to: path)
    let compiled = try CEngineLoader.load(path: try cRendering(), name: "c-v4.16", cache: scratch + "/cache")
    let variants: [(String, any Engine)] = [
        ("swift v4.16", V4_16()),
        ("C in process", compiled),
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
    return figures
}

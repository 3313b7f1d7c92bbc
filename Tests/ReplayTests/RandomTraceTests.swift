import Foundation
import Replay
import TestSupport
import Testing
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// Seeded random traces, well formed but arbitrary: every engine replays them to the end or
/// reports a trace error; nothing traps. A failure prints the seed; the trace is kept.
@Suite struct RandomTraceTests {
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
            for s in RandomTrace.statements(seed: seed) {
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

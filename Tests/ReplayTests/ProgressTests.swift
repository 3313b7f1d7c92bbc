import Replay
import Synchronization
import TestSupport
import Testing
import VFIOEngines

/// Progress: one report per statement and one for the teardown, never past 100 % of the
/// trace's mapped pages, whatever the engines walk (v4.16 walks a breaking page twice).
@Suite struct ProgressTests {
    @Test("Progress counts events and mapped pages, ends at the teardown with every page")
    func progress() throws {
        let seen = Mutex<[ReplayProgress]>([])
        var replayer = Replayer(engines: [V4_16(), V4_17_rc1()])
        replayer.progress = { p in seen.withLock { $0.append(p) } }
        var observer = NoObserver()
        let r = try replayer.replay(path: Paths.traces.appendingPathComponent("gpu-16g-bar.vptr").path, observer: &observer)
        let all = seen.withLock { $0 }
        #expect(all.count == r.events + 1)
        #expect(all.map(\.event) == Array(1...(r.events + 1)))
        #expect(all.allSatisfy { $0.events == 401 && $0.totalMapPages == 12_607_646 })
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.mappedPages <= $1.mappedPages })
        let last = try #require(all.last)
        #expect(last.statement == nil)
        #expect(last.mappedPages == last.totalMapPages)
        #expect(all[316].statement == "map")
        // The walk of v4.16 passes the mapped pages (12,608,028 walked); progress does not.
        #expect(r.summaries[0].counters.pages_walked > Int(last.totalMapPages))
    }
}

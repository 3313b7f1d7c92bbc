import Dispatch
import Synchronization
import TraceFormat
import VFIOModel

/// The output forms of `pinreplay replay`.
public enum ReplayFormat: String, Sendable, CaseIterable {
    case text, json, jsonl
}

/// What replaying one trace gave: its report and, for jsonl, its lines.
public struct TraceOutcome: Sendable {
    public var report: TraceReport
    public var jsonl: String
}

/// Replays several traces, `jobs` at a time; results come back in trace order whatever the
/// number of jobs, so output never depends on it.
public func replayAll(
    paths: [String], engines: [any PinEngine], format: ReplayFormat, jobs: Int,
    maxPages: UInt64 = Replayer.defaultMaxPages,
    progress: (@Sendable (_ trace: String, _ walked: Int, _ total: UInt64) -> Void)? = nil
) -> [Result<TraceOutcome, TraceError>] {
    parallelMap(paths.count, jobs: jobs) { i in
        var replayer = Replayer(engines: engines)
        replayer.maxPages = maxPages
        if let progress { replayer.progress = { progress(paths[i], $0, $1) } }
        do throws(TraceError) {
            if format == .jsonl {
                var observer = JSONLObserver()
                let report = try replayer.replay(path: paths[i], observer: &observer)
                return .success(TraceOutcome(report: report, jsonl: observer.text))
            }
            var observer = NoObserver()
            return .success(TraceOutcome(report: try replayer.replay(path: paths[i], observer: &observer), jsonl: ""))
        } catch {
            return .failure(error)
        }
    }
}

/// Renders replay results in trace order.
public func renderReplay(_ outcomes: [TraceOutcome], format: ReplayFormat, maxExamples: Int, cost: Bool) -> String {
    switch format {
    case .jsonl: return outcomes.map(\.jsonl).joined()
    case .json: return JSONReport.render(outcomes.map(\.report))
    case .text:
        return outcomes.map { TextReport.render($0.report, maxExamples: maxExamples, cost: cost) }.joined(separator: "\n")
    }
}

private final class ParallelState<T: Sendable>: Sendable {
    let next = Mutex(0)
    let results: Mutex<[T?]>
    init(_ n: Int) { results = Mutex([T?](repeating: nil, count: n)) }
}

/// `(0..<n).map(body)`, computed by up to `jobs` threads.
func parallelMap<T: Sendable>(_ n: Int, jobs: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let state = ParallelState<T>(n)
    let workers = max(1, min(jobs, n))
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
        while true {
            let i = state.next.withLock { v -> Int in
                defer { v += 1 }
                return v
            }
            if i >= n { break }
            let r = body(i)
            state.results.withLock { $0[i] = r }
        }
    }
    return state.results.withLock { $0.map { $0! } }
}

import Dispatch
import Synchronization
import TraceFormat
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// The output forms of `pinreplay replay`.
public enum ReplayFormat: String, Sendable, CaseIterable {
    case text, json, jsonl, html
}

/// What replaying one trace gave.
public struct TraceOutcome: Sendable {
    /// What the replay found.
    public var report: TraceReport
    /// The address space and where the findings lie, for the HTML report.
    public var map: AddressMap?
}

/// Replays several traces, `jobs` at a time; results come back in trace order whatever the
/// number of jobs, so output never depends on it. A trace that fails (bad input) is reported
/// in its slot and the others go on.
///
/// For jsonl the lines are written as the replay produces them, never held: to `output` for a
/// single trace, through an unlinked temporary file per trace for several (copied to `output`
/// in trace order once all are done), each line then opening with `"trace":PATH`.
public func replayAll(
    paths: [String], engines: [any Engine], format: ReplayFormat, jobs: Int,
    maxPages: UInt64 = Replayer.defaultMaxPages, output: Int32 = 1, hostIOMMU: HostIOMMUTrace? = nil,
    progress: (@Sendable (_ trace: String, _ progress: ReplayProgress) -> Void)? = nil
) -> [Result<TraceOutcome, TraceError>] {
    let several = paths.count > 1
    let results = parallelMap(paths.count, jobs: jobs) { i -> (Result<TraceOutcome, TraceError>, Int32?) in
        var replayer = Replayer(engines: engines)
        replayer.maxPages = maxPages
        replayer.hostIOMMU = hostIOMMU
        if let progress { replayer.progress = { progress(paths[i], $0) } }
        var spool: Int32?
        do throws(TraceError) {
            switch format {
            case .text, .json:
                var observer = NoObserver()
                return (.success(TraceOutcome(report: try replayer.replay(path: paths[i], observer: &observer))), nil)
            case .html:
                var observer = AddressMapObserver()
                let report = try replayer.replay(path: paths[i], observer: &observer)
                return (.success(TraceOutcome(report: report, map: observer.finish())), nil)
            case .jsonl:
                break
            }
            let fd = several ? try temporaryFile() : output
            spool = several ? fd : nil
            var observer = JSONLStream(
                sink: FDSink(fd: fd, name: several ? "<temporary file>" : "<stdout>"), trace: several ? paths[i] : nil)
            let report = try replayer.replay(path: paths[i], observer: &observer)
            try observer.sink.flush()
            return (.success(TraceOutcome(report: report)), spool)
        } catch {
            if let spool { close(spool) }
            return (.failure(error), nil)
        }
    }
    var out: [Result<TraceOutcome, TraceError>] = []
    var copyFailed: TraceError?
    for (result, spool) in results {
        if let spool {
            defer { close(spool) }
            if copyFailed == nil {
                do throws(TraceError) { try copyAll(from: spool, to: output) } catch { copyFailed = error }
            }
        }
        out.append(copyFailed.map { .failure($0) } ?? result)
    }
    return out
}

/// Renders the reports of replayed traces in trace order (jsonl was written as it came).
public func renderReplay(_ outcomes: [TraceOutcome], format: ReplayFormat, maxExamples: Int, cost: Bool) -> String {
    switch format {
    case .jsonl: return ""
    case .json: return JSONReport.render(outcomes.map(\.report))
    case .text:
        return outcomes.map { TextReport.render($0.report, maxExamples: maxExamples, cost: cost) }.joined(separator: "\n")
    case .html:
        return HTMLReport.render(outcomes.map { ($0.report, $0.map ?? AddressMap()) }, maxExamples: maxExamples)
    }
}

/// Buffered writes to a file descriptor; the first failure is kept and thrown on `flush()`.
/// The jsonl lines are built here byte by byte: a million-request replay writes gigabytes.
final class FDSink {
    let fd: Int32
    let name: String
    private var buffer: [UInt8] = []
    private var failure: TraceError?

    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
        buffer.reserveCapacity(1 << 17)
    }

    @inline(__always) func append(_ bytes: [UInt8]) { buffer.append(contentsOf: bytes) }

    @inline(__always) func append<T: BinaryInteger>(_ v: T) { JSONBytes.append(v, to: &buffer) }

    /// An outcome's fields, as `JSONBytes.outcomeFields` writes them.
    @inline(__always) func append(_ o: RequestOutcome) { JSONBytes.outcomeFields(o, to: &buffer) }

    /// Drains the buffer once it is large.
    func lineDone() {
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 1 << 16 { drain() }
    }

    private func drain() {
        guard failure == nil else {
            buffer.removeAll(keepingCapacity: true)
            return
        }
        do throws(TraceError) { try writeAll(fd, buffer[...], name: name) } catch { failure = error }
        buffer.removeAll(keepingCapacity: true)
    }

    func flush() throws(TraceError) {
        drain()
        if let failure { throw failure }
    }
}

/// The jsonl stream of SPEC.md §4, written as the replay runs; with several traces each line
/// opens with the trace's path. The same bytes as `JSONText.requestLine`, without building a
/// String per line.
struct JSONLStream: ReplayObserver {
    let sink: FDSink
    /// `{"trace":PATH,"event":` or `{"event":`.
    let opening: [UInt8]
    /// `,"engine":"NAME",` per engine name, built once.
    /// `,"engine":NAME,` for each engine, in engine order: made once, not per line.
    private var engineFields: [[UInt8]] = []

    init(sink: FDSink, trace: String?) {
        self.sink = sink
        var j = JSONText()
        j.raw("{")
        if let trace {
            j.raw("\"trace\":")
            j.string(trace)
            j.raw(",")
        }
        j.raw("\"event\":")
        opening = Array(j.out.utf8)
    }

    mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
        if engineFields.count != engines.count {
            engineFields = engines.map { name in
                var j = JSONText()
                j.raw(",\"engine\":")
                j.string(name)
                j.raw(",")
                return Array(j.out.utf8)
            }
        }
        for (fields, o) in zip(engineFields, outcomes) {
            sink.append(opening)
            sink.append(event)
            sink.append(fields)
            sink.append(o)
            sink.append(closing)
            sink.lineDone()
        }
    }

    private let closing: [UInt8] = [UInt8(ascii: "}")]
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

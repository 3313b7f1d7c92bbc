import ArgumentParser
import CEngines
import Dispatch
import Isolation
import Record
import Replay
import Synchronization
import TraceFormat
import VFIOEngines
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// `pinreplay replay TRACE...`: the main job.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay traces through engines and compare them request by request.",
        discussion: """
            Every engine runs on its own simulated host. Exit 0: no divergence and no invariant \
            violation; 1: a divergence or violation; 2: bad usage or bad input.
            """)

    @Argument(help: "Trace files, text or binary; - reads standard input.", completion: .file(extensions: ["txt", "vptr"]))
    var traces: [String]

    @Option(
        help:
            "Engines to compare, comma separated (names, aliases, the groups 'later' and 'iommufd', or a C file: ./my-patch.c or NAME=PATH), or 'all'."
    )
    var engines: String = Engines.defaultNames.joined(separator: ",")

    @Option(help: "Report form.")
    var format: ReplayFormat = .text

    @Option(
        name: [.short, .customLong("output")], help: "Write the report to FILE (atomically) instead of standard output.",
        completion: .file())
    var output: String?

    @Flag(help: "Add the per-operation breakdown of the estimated kernel time (text form).")
    var cost = false

    @Option(help: "Traces replayed in parallel (default: all cores).")
    var jobs: Int?

    @Option(help: "Examples shown per group of divergences or violations (text and html forms).")
    var maxExamples: Int = 5

    @Flag(
        help:
            "One row per trace (events, requests, findings by kind, estimated time per engine) instead of the full reports (text or json).")
    var summary = false

    @Option(help: "Most pages one map, pin or touch may ask for before the trace is refused (default 2^32: 16 TiB).")
    var maxPages: UInt64 = Replayer.defaultMaxPages

    @OptionGroup var isolation: IsolationOptions

    @Option(
        help: "The host kernel's ftrace iommu:map events of the same boot: say whether each engine's iommu_map calls reproduce them.",
        completion: .file())
    var iommuTrace: String?

    func run() throws {
        let selected = try Self.selectEngines(engines, isolation: isolation)
        let jobs = jobs ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        guard jobs >= 1 else { throw UsageError("--jobs must be at least 1") }
        guard !summary || format == .text || format == .json else { throw UsageError("--summary takes --format text or json") }
        guard maxPages >= 1 else { throw UsageError("--max-pages must be at least 1") }
        guard maxExamples >= 0 else { throw UsageError("--max-examples must not be negative") }
        guard !traces.isEmpty else { throw UsageError("no trace given") }
        guard iommuTrace == nil || traces.count == 1 else { throw UsageError("--iommu-trace goes with one trace") }
        let host = try iommuTrace.map { path in try HostIOMMUTrace(try readProcText(path), file: path) }

        let out = try AtomicOutput(path: output ?? "-")
        let results = replayAll(
            paths: traces, engines: selected, format: format, jobs: jobs, maxPages: maxPages, output: out.fileDescriptor,
            hostIOMMU: host, progress: ProgressLine.make())
        ProgressLine.clear()
        // A bad trace is reported and the others go on; exit 2 at the end.
        var outcomes: [TraceOutcome] = []
        var failed = false
        for r in results {
            switch r {
            case .success(let o): outcomes.append(o)
            case .failure(let e):
                printError("pinreplay: \(e)")
                failed = true
            }
        }
        let report =
            summary
            ? (format == .json ? SummaryReport.json(outcomes.map(\.report)) : SummaryReport.text(outcomes.map(\.report)))
            : renderReplay(outcomes, format: format, maxExamples: maxExamples, cost: cost)
        // Nothing replayed: no file is left behind (standard output gets what there is).
        if !outcomes.isEmpty || output == nil {
            try out.write(Array(report.utf8))
            try out.commit()
        }
        if failed { throw ExitCode(2) }
        if outcomes.contains(where: { !$0.report.isClean }) { throw ExitCode(1) }
    }

    /// Engines by name or alias, or compiled from a C file (named by its stem); `all` is every
    /// registered engine, `later` the group of SPEC-LATER's cases.
    static func selectEngines(_ list: String, isolation: IsolationOptions? = nil) throws -> [any Engine] {
        let kernelAPI = isolation?.kernelAPI
        if list == "all" { return Engines.all }
        var out: [any Engine] = []
        // A group adds the engines the list does not hold yet (`iommufd` is a group over the
        // engine of that name; `iommufd-native` is that engine alone); a name given twice is an error.
        var names: [String] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            if let group = Engines.groups[item] {
                names += group.filter { n in !names.contains { Engines.named($0)?.name == n } }
            } else {
                names.append(item)
            }
        }
        for name in names {
            let engine: any Engine
            if let c = CEngineLoader.namedPath(name) {
                // Code under review runs isolated unless asked not to: only its worker loads it.
                do {
                    let compiled = try CEngineLoader.compile(path: c.path, name: c.name, kernelAPI: kernelAPI)
                    if let isolation, !isolation.noSandbox {
                        guard isolation.engineTimeout > 0 else { throw UsageError("--engine-timeout must be above 0") }
                        engine = IsolatedCEngine(compiled, kernelAPI: kernelAPI, sandbox: true, timeout: isolation.engineTimeout)
                    } else {
                        engine = try CEngineLoader.open(compiled)
                    }
                } catch let error as CEngineError {
                    throw UsageError(error.message)
                }
            } else if let e = Engines.named(name) {
                engine = e
            } else {
                let groups = Engines.groups.keys.sorted().joined(separator: ", ")
                throw UsageError(
                    "unknown engine '\(name)'; engines: \(Engines.spellings); groups: \(groups), all; or a C file (./my-patch.c, NAME=PATH)"
                )
            }
            guard !out.contains(where: { $0.name == engine.name }) else { throw UsageError("engine '\(engine.name)' named twice") }
            out.append(engine)
        }
        return out
    }
}

/// Progress on standard error, only when it is a terminal and a replay has run over a second:
/// the event and statement under way, the share of the trace's mapped pages before it, and how
/// long the statement (or the teardown) has taken so far. A ticker redraws it five times a
/// second, so one long request or the teardown does not look like a hang.
enum ProgressLine {
    private struct State {
        var trace = ""
        var latest: ReplayProgress?
        var since: ContinuousClock.Instant?
        var shown = false
    }
    private static let state = Mutex(State())
    /// Set and cancelled by the main thread only (make, clear).
    nonisolated(unsafe) private static var timer: DispatchSourceTimer?
    private static let clock = ContinuousClock()

    static func make() -> (@Sendable (String, ReplayProgress) -> Void)? {
        guard isatty(2) != 0 else { return nil }
        let ticker = DispatchSource.makeTimerSource(queue: .global())
        ticker.schedule(deadline: .now() + .seconds(1), repeating: .milliseconds(200))
        ticker.setEventHandler { draw() }
        ticker.resume()
        timer = ticker
        return { trace, progress in
            state.withLock { s in
                s.trace = trace
                s.latest = progress
                s.since = clock.now
            }
        }
    }

    private static func draw() {
        state.withLock { s in
            guard let p = s.latest, let since = s.since else { return }
            s.shown = true
            let percent = p.totalMapPages == 0 ? 100 : Int(p.mappedPages * 100 / p.totalMapPages)
            let what = p.statement.map { "event \(p.event) of \(p.events) (\($0))" } ?? "teardown after event \(p.events)"
            let d = (clock.now - since).components
            let elapsed = Double(d.seconds) + Double(d.attoseconds) / 1e18
            printError(
                "\r\(s.trace): \(what), \(percent)% of mapped pages before it, \(formatFixed(elapsed, 1)) s in it\u{1b}[K", newline: false)
        }
    }

    static func clear() {
        timer?.cancel()
        timer = nil
        state.withLock { s in
            if s.shown { printError("\r\u{1b}[K", newline: false) }
        }
    }
}

extension ReplayFormat: ExpressibleByArgument {}
extension KernelAPI: ExpressibleByArgument {}

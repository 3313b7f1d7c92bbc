import ArgumentParser
import CEngines
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

    @Option(help: "Engines to compare, comma separated (names, aliases, the group 'later', or a C file: ./my-patch.c), or 'all'.")
    var engines: String = Engines.defaultNames.joined(separator: ",")

    @Option(help: "The kernel API a C engine is written against (default: from what the file uses).")
    var kernelAPI: String?

    @Option(help: "Report form.")
    var format: ReplayFormat = .text

    @Option(name: [.short, .customLong("output")], help: "Write the report to FILE (atomically) instead of standard output.", completion: .file())
    var output: String?

    @Flag(help: "Add the per-operation breakdown of the estimated kernel time (text form).")
    var cost = false

    @Option(help: "Traces replayed in parallel (default: all cores).")
    var jobs: Int?

    @Option(help: "Examples shown per group of divergences or violations (text and html forms).")
    var maxExamples: Int = 5

    @Flag(help: "One row per trace (events, requests, findings by kind, estimated time per engine) instead of the full reports (text or json).")
    var summary = false

    @Option(help: "Most pages one map, pin or touch may ask for before the trace is refused (default 2^32: 16 TiB).")
    var maxPages: UInt64 = Replayer.defaultMaxPages

    func run() throws {
        let selected = try Self.selectEngines(engines, kernelAPI: kernelAPI)
        let jobs = jobs ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        guard jobs >= 1 else { throw UsageError("--jobs must be at least 1") }
        guard !summary || format == .text || format == .json else { throw UsageError("--summary takes --format text or json") }
        guard maxPages >= 1 else { throw UsageError("--max-pages must be at least 1") }
        guard maxExamples >= 0 else { throw UsageError("--max-examples must not be negative") }
        guard !traces.isEmpty else { throw UsageError("no trace given") }

        let out = try AtomicOutput(path: output ?? "-")
        let results = replayAll(
            paths: traces, engines: selected, format: format, jobs: jobs, maxPages: maxPages, output: out.fileDescriptor,
            progress: ProgressLine.make())
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
    static func selectEngines(_ list: String, kernelAPI: String? = nil) throws -> [any PinEngine] {
        if list == "all" { return Engines.all }
        var out: [any PinEngine] = []
        let names = list.split(separator: ",", omittingEmptySubsequences: false).flatMap { item in
            Engines.groups[String(item)] ?? [String(item)]
        }
        for name in names {
            let engine: any PinEngine
            if CEngineLoader.isPath(name) {
                do { engine = try CEngineLoader.load(path: name, kernelAPI: kernelAPI) } catch { throw UsageError(error.message) }
            } else if let e = Engines.named(name) {
                engine = e
            } else {
                let groups = Engines.groups.keys.sorted().joined(separator: ", ")
                throw UsageError("unknown engine '\(name)'; engines: \(Engines.spellings); groups: \(groups), all; or a C file (./my-patch.c)")
            }
            guard !out.contains(where: { $0.name == engine.name }) else { throw UsageError("engine '\(engine.name)' named twice") }
            out.append(engine)
        }
        return out
    }
}

/// Progress on standard error, only when it is a terminal and a replay has run over a second;
/// redrawn at most ten times a second.
enum ProgressLine {
    private static let state = Mutex<(shown: Bool, last: ContinuousClock.Instant?)>((false, nil))

    static func make() -> (@Sendable (String, Int, UInt64) -> Void)? {
        guard isatty(2) != 0 else { return nil }
        let clock = ContinuousClock()
        let start = clock.now
        return { trace, walked, total in
            let now = clock.now
            guard now - start > .seconds(1) else { return }
            state.withLock { s in
                if let last = s.last, now - last < .milliseconds(100) { return }
                s = (true, now)
                printError("\r\(trace): \(walked) of \(total) pages walked\u{1b}[K", newline: false)
            }
        }
    }

    static func clear() {
        state.withLock { if $0.shown { printError("\r\u{1b}[K", newline: false) } }
    }
}

extension ReplayFormat: ExpressibleByArgument {}

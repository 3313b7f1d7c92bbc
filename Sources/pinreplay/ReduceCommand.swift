import ArgumentParser
import Reduce
import Replay
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// `pinreplay reduce TRACE --engines A,B`: a reproducer short enough to post.
struct ReduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reduce",
        abstract: "Shrink a trace to a short text trace that still shows a divergence or violation.",
        discussion: """
            ddmin over statements (the result is 1-minimal: dropping any one statement loses \
            what is kept or makes the trace invalid), then smaller sizes and counts and no names. \
            Exit 0 with the reproducer written; 1 when the trace does not show what is to be \
            kept; 2 bad usage or input.
            """)

    @Argument(help: "The trace, text or binary; - reads standard input.")
    var trace: String

    @Option(help: "Engines to replay, comma separated (names, aliases, 'later', a C file, or 'all'); at least one.")
    var engines: String

    @Option(
        help: """
            What the reproducer must show: any, a divergence kind (return-code, mapping, accounting, \
            page-references, chunk-boundaries) or violation:KIND (foreign-pfn, refcount-underflow, \
            leak, crash; crash@ENGINE is short for violation:crash@ENGINE), optionally @ENGINE. Default: the first thing the full replay reports.
            """)
    var keep: String?

    @Option(name: .shortAndLong, help: "Where to write the reproducer (default: standard output).")
    var output: String = "-"

    @Option(help: "Candidates replayed at once (default: all cores).")
    var jobs: Int?

    @OptionGroup var isolation: IsolationOptions

    func run() throws {
        let selected = try ReplayCommand.selectEngines(engines, isolation: isolation)
        let jobs = jobs ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        guard jobs >= 1 else { throw UsageError("--jobs must be at least 1") }
        var wanted: Finding?
        if let keep {
            guard let f = Finding(keep) else {
                throw UsageError("--keep must be any, a divergence kind or violation:KIND, optionally @ENGINE, not '\(keep)'")
            }
            if let e = f.engine, !selected.contains(where: { $0.name == e }) {
                throw UsageError("--keep names engine '\(e)', which --engines does not replay")
            }
            wanted = f
        }

        let reader = try TraceReader(path: trace)
        var statements: [Statement] = []
        while let s = try reader.next() { statements.append(s) }
        var none = NoObserver()
        let report = try Replayer(engines: selected).replay(statements: statements, name: reader.file, observer: &none)
        guard let keep = wanted ?? Finding.first(in: report) else {
            printError("pinreplay: \(reader.file): nothing to reduce: the replay shows no divergence or violation")
            throw ExitCode(1)
        }
        guard keep.isShown(by: report) else {
            printError("pinreplay: \(reader.file): the replay does not show \(keep)")
            throw ExitCode(1)
        }

        var reducer = Reducer(engines: selected, keep: keep, jobs: jobs)
        if isatty(2) != 0 {
            reducer.progress = { n in printError("\rreducing: \(n) statements\u{1b}[K", newline: false) }
        }
        let reduced = reducer.reduce(statements)
        if reducer.progress != nil { printError("\r\u{1b}[K", newline: false) }
        let text = Reducer.render(
            reduced, source: reader.file, sourceCount: statements.count, engines: selected.map(\.name), keep: keep)
        let out = try AtomicOutput(path: output)
        try out.write(Array(text.utf8))
        try out.commit()
    }
}

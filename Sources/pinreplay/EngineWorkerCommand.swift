import ArgumentParser
import CEngines
import Isolation

/// The process an isolated C engine runs in (started by replay, reduce and fuzz; not for
/// people): docs/C-ENGINES.md.
struct EngineWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-worker", abstract: "Run one C engine over a trace in this process (internal).", shouldDisplay: false)

    @Option var trace: String
    @Option var cEngine: String
    @Option var kernelAPI: KernelAPI?
    @Flag var noSandbox = false

    func run() throws {
        guard let c = CEngineLoader.namedPath(cEngine) else { throw UsageError("--c-engine NAME=PATH") }
        let status = EngineWorker.run(trace: trace, path: c.path, name: c.name, kernelAPI: kernelAPI, sandbox: !noSandbox)
        if status != 0 { throw ExitCode(status) }
    }
}

/// How C engines run: isolated in a sandboxed process of their own (the default), and how
/// long a statement may take there.
struct IsolationOptions: ParsableArguments {
    @Option(help: "The kernel API C engines are written against: 4.16, 5.15, 6.1, 6.12, 6.15, 6.18 (default: from what each file uses).")
    var kernelAPI: KernelAPI?

    @Flag(help: "Run C engines in this process, without the sandbox (for debugging them with gdb).")
    var noSandbox = false

    @Option(help: "Seconds an isolated C engine may take over one statement before it counts as hung.")
    var engineTimeout: Double = 120
}

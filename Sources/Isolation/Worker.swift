import CEngines
import CSandbox
import Replay
import TraceFormat
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// The process an isolated C engine runs in: it loads the engine, opens the trace, installs
/// the crash handlers and the sandbox, then replays the trace on its own host and writes one
/// record a statement to what was its standard output (`Wire`). The parent reads them in lockstep.
public enum EngineWorker {
    /// Runs the worker; returns its exit status.
    public static func run(trace: String, path: String, name: String, kernelAPI: KernelAPI?, sandbox: Bool) -> Int32 {
        // The records get a descriptor of their own; what the engine prints goes to /dev/null,
        // not into the records.
        wire = dup(1)
        let null = open("/dev/null", O_WRONLY)
        guard wire >= 0, null >= 0, dup2(null, 1) == 1 else {
            wire = 1
            send("X cannot set up the worker's output: \(String(cString: strerror(errno)))\n")
            return 2
        }
        close(null)
        let engine: CEngine
        let reader: TraceReader
        do {
            engine = try CEngineLoader.load(path: path, name: name, kernelAPI: kernelAPI)
            reader = try TraceReader(path: trace)
        } catch let e as CEngineError {
            send("X \(e.message)\n")
            return 2
        } catch {
            send("X \(error)\n")
            return 2
        }
        let host = Host(engine: engine)
        _ = host.backend
        // Where the library was loaded: the parent turns a crash's pc into a function.
        var base: UInt = 0
        var file: UnsafePointer<CChar>?
        if pinreplay_library_of(engine.entryPoint, &base, &file) == 0, let file {
            send("H \(base) \(String(cString: file))\n")
        }
        guard pinreplay_install_crash_handlers(wire) == 0 else {
            send("X cannot install the crash handlers: \(String(cString: strerror(errno)))\n")
            return 2
        }
        if sandbox && pinreplay_install_sandbox() != 0 {
            send("X cannot install the seccomp sandbox: \(String(cString: strerror(errno))) (run with --no-sandbox)\n")
            return 2
        }
        var event = 0
        // A trace error stops the worker; the parent, reading the same trace, reports it.
        while let s = try? reader.next() {
            event += 1
            host.event = event
            let outcome: RequestOutcome?
            do {
                outcome = try Replayer.apply(s, to: host)
            } catch {
                send("X \(error.message)\n")
                return 0
            }
            send(Wire.encode(event: event, outcome, state(host)))
        }
        host.event = event + 1
        host.teardown()
        send(Wire.encodeTeardown(state(host)))
        return 0
    }

    static func state(_ h: Host) -> Wire.State {
        Wire.State(
            counters: h.counters, ramRefs: h.ramRefsNet, lockedVM: h.mm.locked_vm, userLockedVM: h.user_locked_vm,
            pinnedVM: h.mm.pinned_vm, violations: h.takeViolations().map(\.violation))
    }

    /// Where records go: standard output as the worker started.
    nonisolated(unsafe) static var wire: Int32 = 1

    /// One record, whole, to the parent; a parent that went away ends the worker.
    static func send(_ line: String) {
        var bytes = Array(line.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(wire, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { _exit(3) }
            done += n
        }
    }
}

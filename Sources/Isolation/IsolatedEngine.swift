import CEngines
import Foundation
import Replay
import TraceFormat
import VFIOModel

/// A C engine that runs in a process of its own (`pinreplay engine-worker`), under a seccomp
/// sandbox unless told otherwise: a crash, a hang or a forbidden system call in the code under
/// review becomes a `crash` finding of this engine at that event, and the other engines go on.
public final class IsolatedCEngine: Engine, @unchecked Sendable {
    // Immutable after init.
    /// The compiled engine, not loaded here: it was compiled (and its errors reported) when the
    /// engines were chosen, and only its worker runs its code.
    let compiled: CompiledCEngine
    let kernelAPI: KernelAPI?
    let sandbox: Bool
    /// Seconds a statement may take before the engine counts as hung.
    let timeout: Double
    /// The pinreplay executable that runs `engine-worker`: this one, unless a caller that is not
    /// pinreplay (a test) names it.
    let worker: String

    /// Isolates `compiled`.
    public init(_ compiled: CompiledCEngine, kernelAPI: KernelAPI?, sandbox: Bool, timeout: Double, worker: String = "/proc/self/exe") {
        self.compiled = compiled
        self.kernelAPI = kernelAPI
        self.sandbox = sandbox
        self.timeout = timeout
        self.worker = worker
    }

    public var name: String { compiled.name }
    public var aliases: [String] { [] }
    public var summary: String { compiled.summary + (sandbox ? ", in a sandboxed process" : ", in a process of its own") }
    public var kernels: String { compiled.kernels }
    public var profile: EngineProfile { compiled.kernelAPI.profile }
    public var lockedVMCounter: LockedVMCounter { .mm }
    public func makeBackend(_ host: VFIOModel.Host) -> any DMABackend { WorkerBackend(self) }
}

/// The parent's end of an isolated engine: it starts the worker on the trace, reads a record a
/// statement and mirrors the worker's state into the host the replay looks at.
final class WorkerBackend: DMABackend, TraceFollower {
    let engine: IsolatedCEngine
    private var process: Process?
    private var input: FileHandle?
    /// What the worker wrote and was read, from `consumed` on not yet taken as lines.
    private var buffer: [UInt8] = []
    private var consumed = 0
    /// One read's worth, reused.
    private var chunk = [UInt8](repeating: 0, count: 65536)
    private var library: (base: UInt64, path: String)?
    private(set) var crashed = false

    init(_ engine: IsolatedCEngine) { self.engine = engine }

    deinit {
        if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }

    func start(trace path: String) throws(TraceError) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: engine.worker)
        var args = ["engine-worker", "--trace", path, "--c-engine", "\(engine.name)=\(engine.compiled.path)"]
        if let api = engine.kernelAPI { args += ["--kernel-api", api.rawValue] }
        if !engine.sandbox { args.append("--no-sandbox") }
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardInput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch {
            throw TraceError.io(file: path, "cannot start the process of engine \(engine.name): \(error.localizedDescription)")
        }
        process = p
        input = pipe.fileHandleForReading
        try? pipe.fileHandleForWriting.close()
    }

    /// The next line the worker wrote, or nil at its end, after `timeout` seconds without one.
    private func readLine(timeout: Double) -> (line: Substring?, timedOut: Bool) {
        guard let fd = input?.fileDescriptor else { return (nil, false) }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let nl = buffer[consumed...].firstIndex(of: 10) {
                let line = String(decoding: buffer[consumed..<nl], as: UTF8.self)
                consumed = nl + 1
                return (Substring(line), false)
            }
            // Lines are taken by moving `consumed`; the buffer is compacted once it is all read.
            buffer.removeSubrange(..<consumed)
            consumed = 0
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return (nil, true) }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(min(left, 3600) * 1000) + 1)
            if r < 0 && errno == EINTR { continue }
            if r == 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return (nil, false) }
            buffer += chunk[..<n]
        }
    }

    /// The next record, the `H` line taken on the way.
    private func next() -> (record: Wire.Record?, timedOut: Bool) {
        while true {
            let (line, timedOut) = readLine(timeout: engine.timeout)
            guard let line else { return (nil, timedOut) }
            if line.hasPrefix("H ") {
                let w = line.split(separator: " ", maxSplits: 2)
                if w.count == 3, let base = UInt64(w[1]) { library = (base, String(w[2])) }
                continue
            }
            return (Wire.decode(line), false)
        }
    }

    func follow(_ s: Statement, event: Int, on host: VFIOModel.Host) throws(WorldError) -> RequestOutcome? {
        if crashed { return Self.notRun(s) }
        let (record, timedOut) = next()
        switch record {
        case let .event(e, outcome, state) where e == event:
            mirror(state, into: host)
            return outcome
        case .worldError(let message):
            throw WorldError(message)
        default:
            crash(record, timedOut: timedOut, on: host)
            return Self.notRun(s)
        }
    }

    func finish(on host: VFIOModel.Host) {
        guard !crashed else { return }
        let (record, timedOut) = next()
        if case .teardown(let state) = record {
            mirror(state, into: host)
            process?.waitUntilExit()
        } else {
            crash(record, timedOut: timedOut, on: host)
        }
    }

    private func mirror(_ s: Wire.State, into host: VFIOModel.Host) {
        host.mirror(
            counters: s.counters, ramRefs: s.ramRefs, lockedVM: s.lockedVM, userLockedVM: s.userLockedVM, pinnedVM: s.pinnedVM,
            violations: s.violations)
    }

    /// What a request the engine never reached reports.
    static func notRun(_ s: Statement) -> RequestOutcome? {
        switch s {
        case .map: .notRun(op: "map")
        case .unmap, .unmapAll: .notRun(op: "unmap")
        case .pin: .notRun(op: "pin")
        case .unpin: .notRun(op: "unpin")
        default: nil
        }
    }

    /// Records how the worker ended, and ends it for good.
    private func crash(_ record: Wire.Record?, timedOut: Bool, on host: VFIOModel.Host) {
        crashed = true
        var what: String
        if timedOut {
            what = "no answer within \(Self.seconds(engine.timeout)) (a hang, or an endless loop): the engine's process was killed"
            if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) }
        } else if case let .crash(signal, syscall, pc) = record {
            what = Self.signalName(signal)
            if signal == SIGSYS {
                what += ": the sandbox refused system call \(Self.syscallName(syscall))"
            }
            if let where_ = symbolize(pc) { what += " in \(where_)" }
        } else {
            what = "the engine's process ended without a word"
        }
        if let p = process {
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            if !timedOut, record == nil {
                what +=
                    p.terminationReason == .uncaughtSignal
                    ? " (killed by \(Self.signalName(p.terminationStatus)))" : " (exit status \(p.terminationStatus))"
            }
        }
        host.recordCrash(what)
    }

    /// The C function and line of `pc` in the engine's library (built with -g), if addr2line
    /// can tell.
    private func symbolize(_ pc: UInt64) -> String? {
        guard let library, pc >= library.base else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["addr2line", "-f", "-e", library.path, "0x" + String(pc - library.base, radix: 16)]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        guard let function = lines.first, function != "??" else { return nil }
        let place = lines.count > 1 && !lines[1].hasPrefix("??") ? " (\(lines[1].split(separator: "/").last ?? lines[1]))" : ""
        return "\(function)()" + place
    }

    static func seconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : "\(s) s" }

    static func signalName(_ s: Int32) -> String {
        switch s {
        case SIGSEGV: "SIGSEGV"
        case SIGBUS: "SIGBUS"
        case SIGILL: "SIGILL"
        case SIGFPE: "SIGFPE"
        case SIGABRT: "SIGABRT"
        case SIGSYS: "SIGSYS"
        case SIGKILL: "SIGKILL"
        default: "signal \(s)"
        }
    }

    /// x86-64 system call numbers an engine under review is likely to try.
    static func syscallName(_ n: Int) -> String {
        let names: [Int: String] = [
            0: "read", 1: "write", 2: "open", 3: "close", 9: "mmap", 16: "ioctl", 41: "socket", 42: "connect", 43: "accept", 49: "bind",
            56: "clone", 57: "fork", 58: "vfork", 59: "execve", 62: "kill", 82: "rename", 83: "mkdir", 84: "rmdir", 87: "unlink",
            90: "chmod", 101: "ptrace", 105: "setuid", 257: "openat", 263: "unlinkat", 322: "execveat", 437: "openat2",
        ]
        return names[n].map { "\($0) (\(n))" } ?? "number \(n)"
    }

    // A worker answers everything through follow(): these are the same requests.
    func map(_ iova: IOVA, _ vaddr: VAddr, _ size: UInt64, _ prot: Prot) -> RequestOutcome { .notRun(op: "map") }
    func unmap(_ iova: IOVA, _ size: UInt64) -> RequestOutcome { .notRun(op: "unmap") }
    func unmapAll(_ iova: IOVA, _ size: UInt64) -> RequestOutcome { .notRun(op: "unmap") }
    func pin(_ iova: IOVA, _ npage: Int, _ prot: Prot) -> RequestOutcome { .notRun(op: "pin") }
    func unpin(_ iova: IOVA, _ npage: Int) -> RequestOutcome { .notRun(op: "unpin") }
    func close() {}
}

import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// Figures of one case as measured from outside: its own figures, its wall time and peak RSS.
public struct BenchResult: Sendable {
    /// The case's name.
    public var name: String
    /// The figures the case printed, name and value, in its order.
    public var figures: [(String, String)]
    /// Wall time of the whole case process, generation included.
    public var wallSeconds: Double
    /// Peak resident set of the case process, from the kernel.
    public var peakRSSKiB: Int
}

/// Runs each case in a child process (`executable bench --child NAME`) and reads back its
/// figures from standard output; the child's rusage gives its peak RSS.
public func runBenchCases(_ cases: [BenchCase], runs: Int, executable: String) throws -> [BenchResult] {
    var results: [BenchResult] = []
    for c in cases {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw BenchError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv = [executable, "bench", "--child", c.name, "--runs", String(runs)]
        let cargs = argv.map { strdup($0) } + [nil]
        var pid: pid_t = 0
        let clock = ContinuousClock()
        let start = clock.now
        let rc = posix_spawn(&pid, executable, &actions, nil, cargs, environ)
        posix_spawn_file_actions_destroy(&actions)
        for a in cargs { free(a) }
        close(fds[1])
        guard rc == 0 else { throw BenchError("cannot start \(executable)") }
        var output: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { readRetrying(fds[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            output += buf[0..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        var usage = rusage()
        wait4(pid, &status, 0, &usage)
        let wall = clock.now - start
        guard status == 0 else { throw BenchError("case \(c.name) failed (status \(status))") }
        let figures = String(decoding: output, as: UTF8.self).split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: "\t", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        results.append(BenchResult(name: c.name, figures: figures, wallSeconds: seconds, peakRSSKiB: usage.ru_maxrss))
    }
    return results
}

/// Runs one case in this process and prints its figures, tab separated, one per line.
public func runBenchChild(_ name: String, runs: Int) throws {
    guard let c = BenchCase.all.first(where: { $0.name == name }) else { throw BenchError("no case \(name)") }
    var template = Array("/tmp/pinreplay-bench.XXXXXX".utf8CString)
    guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
        throw BenchError("cannot make a scratch directory")
    }
    defer { removeDirectory(dir) }
    for (k, v) in try c.run(runs, dir) { print("\(k)\t\(v)") }
}

/// A case that could not run or whose process failed.
public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

import Foundation
import TestSupport
import Testing
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// Writes that never lie: a failed write is exit 2 and one line; a file appears whole or not
/// at all, whatever kills the writer; only regular files are replaced by renaming.
@Suite(.serialized) struct WriteTests {
    @Test(
        "Every command exits 2 with one line when standard output cannot be written",
        arguments: [
            ["replay", "--format", "json", "traces/hugetlb.txt"], ["replay", "traces/hugetlb.txt"], ["verify", "traces/hugetlb.txt"],
            ["stat", "traces/hugetlb.txt"], ["engines"], ["generate", "--list"], ["dump", "traces/hugetlb.txt"],
        ])
    func fullDevice(args: [String]) throws {
        let r = try CLI.run(args, stdoutFile: "/dev/full")
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("pinreplay: ") && r.stderr.hasSuffix("No space left on device\n"))
        #expect(r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
    }

    @Test("-o through a symlink writes the file it points to and leaves the link a link")
    func symlinkWrittenInPlace() throws {
        let dir = Paths.scratch()
        let target = dir.appendingPathComponent("target.txt").path
        let link = dir.appendingPathComponent("link.txt").path
        try "old\n".write(toFile: target, atomically: false, encoding: .utf8)
        #expect(symlink(target, link) == 0)
        let r = try CLI.run(["convert", "--to", "text", "traces/hugetlb.txt", link])
        #expect(r.status == 0, "\(r.stderr)")
        var st = stat()
        #expect(lstat(link, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK)
        #expect(try String(contentsOfFile: target, encoding: .utf8).hasPrefix("vptr-text 1\n"))
    }

    /// Starts a long `generate`, waits for its temporary file, kills it with `signal`, and returns
    /// what is left in the directory.
    func killMidWrite(_ signal: Int32) throws -> [String] {
        let dir = Paths.scratch("kill-\(signal)")
        let out = dir.appendingPathComponent("big.vptr").path
        // posix_spawn with an empty signal mask and default dispositions: a test runner's
        // threads block signals, and a child would inherit that.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = [CLI.executable.path, "generate", "--profile", "viommu-churn", "--requests", "20000000", "-o", out]
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        #expect(posix_spawn(&pid, CLI.executable.path, &actions, &attr, cargs, environ) == 0)
        // Wait (by polling, not by the clock's verdict) until the temporary file exists.
        var seen = false
        for _ in 0..<2000 where !seen {
            seen = (try FileManager.default.contentsOfDirectory(atPath: dir.path)).contains { $0.hasPrefix("big.vptr.tmp.") }
            if !seen { usleep(5000) }
        }
        #expect(seen, "the writer never created its temporary file")
        kill(pid, signal)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        // Died of the signal itself (WIFSIGNALED, WTERMSIG), as a well-behaved tool does.
        #expect(status & 0x7f == signal)
        return try FileManager.default.contentsOfDirectory(atPath: dir.path)
    }

    @Test("SIGINT and SIGTERM mid-write leave nothing behind", arguments: [SIGINT, SIGTERM])
    func signalsCleanUp(signal: Int32) throws {
        #expect(try killMidWrite(signal) == [])
    }

    @Test("SIGKILL mid-write leaves no partial file under the target name")
    func sigkillLeavesNoPartialFile() throws {
        let left = try killMidWrite(SIGKILL)
        #expect(!left.contains("big.vptr"))
        #expect(left.allSatisfy { $0.hasPrefix("big.vptr.tmp.") })
    }

    @Test("A directory is replaced whole: new files in, stale ones gone, nothing temporary left")
    func directoryReplacement() throws {
        let root = Paths.scratch()
        let dir = root.appendingPathComponent("expected").path
        try replaceDirectory(dir, files: [("a.jsonl", Array("1\n".utf8)), ("stale.jsonl", Array("x\n".utf8))])
        try replaceDirectory(dir, files: [("a.jsonl", Array("2\n".utf8)), ("b.json", Array("{}\n".utf8))])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["a.jsonl", "b.json"])
        #expect(try String(contentsOfFile: dir + "/a.jsonl", encoding: .utf8) == "2\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["expected"])
    }

    @Test("convert says how many records of unknown types it left out")
    func convertUnknownRecords() throws {
        let dir = Paths.scratch()
        let path = dir.appendingPathComponent("future.vptr").path
        let w = try TraceWriter(path: path, form: .binary)
        try w.write(.mark("before"))
        w.writeUnknownRecord(type: 4000, payload: [1, 2, 3])
        w.writeUnknownRecord(type: 4001, payload: [])
        try w.finish()
        let out = dir.appendingPathComponent("out.txt").path
        let r = try CLI.run(["convert", path, out])
        #expect(r.status == 0)
        #expect(r.stderr == "pinreplay: \(path): 2 records of types this version does not know were left out of \(out)\n")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "vptr-text 1\nmark before\n")
    }

    @Test("A binary trace cut to 0-3 bytes is diagnosed as such, with an offset", arguments: [0, 1, 2, 3])
    func shortBinary(bytes: Int) throws {
        let dir = Paths.scratch("short-\(bytes)")
        let path = dir.appendingPathComponent("cut.vptr").path
        let whole = try Data(contentsOf: Paths.traces.appendingPathComponent("gpu-16g-bar.vptr"))
        try whole.prefix(bytes).write(to: URL(fileURLWithPath: path))
        let r = try CLI.run(["verify", path])
        #expect(r.status == 2)
        #expect(
            r.stderr
                == (bytes == 0
                    ? "pinreplay: \(path): byte 0: empty file: not a trace\n"
                    : "pinreplay: \(path): byte \(bytes): file ends inside the 24-byte header (truncated)\n"))
    }

    @Test("A trace read from a pipe (replay <(cat trace)) is read once and replayed")
    func pipeInput() throws {
        let dir = Paths.scratch()
        let fifo = dir.appendingPathComponent("trace.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let text = try Data(contentsOf: Paths.traces.appendingPathComponent("hugetlb.txt"))
        let writer = Thread {
            if let h = FileHandle(forWritingAtPath: fifo) {
                h.write(text)
                try? h.close()
            }
        }
        writer.start()
        let r = try CLI.run(["replay", "--engines", "old", fifo])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("== \(fifo) (text): 6 events, 4 requests"))
    }
}

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A read-only file read in chunks; never holds more than one chunk.
final class ByteInput {
    let name: String
    private let fd: Int32
    private let ownsFD: Bool
    /// Bytes read but not consumed: `buffer[start..<end]`.
    private(set) var buffer: [UInt8]
    private(set) var start = 0
    private(set) var end = 0
    /// File offset of `buffer[start]`.
    private(set) var offset: UInt64 = 0
    private(set) var atEOF = false
    /// The most bytes one read takes: tests set it small to cut the input at every boundary.
    var readLimit = Int.max

    init(fd: Int32, name: String, ownsFD: Bool, chunkSize: Int = 1 << 16) {
        self.fd = fd
        self.name = name
        self.ownsFD = ownsFD
        buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    deinit { if ownsFD { close(fd) } }

    var available: Int { end - start }

    /// Reads more bytes, keeping the unconsumed ones. Returns false at end of file.
    @discardableResult
    func fill() throws(TraceError) -> Bool {
        if atEOF { return false }
        if start > 0 {
            buffer.withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return }
                memmove(base, base + start, end - start)
            }
            end -= start
            start = 0
        }
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        let n = buffer.withUnsafeMutableBytes { raw in readRetrying(fd, raw.baseAddress! + end, min(raw.count - end, readLimit)) }
        if n < 0 {
            throw TraceError.io(file: name, "read failed", at: .byte(offset + UInt64(available)))
        }
        if n == 0 {
            atEOF = true
            return false
        }
        end += n
        return true
    }

    /// An error in this file at byte offset `at`.
    func failure(_ at: UInt64, _ code: TraceError.Code, _ message: String, cause: TraceError.Cause? = nil) -> TraceError {
        TraceError(file: name, .byte(at), code, message, cause: cause)
    }

    /// Marks `n` available bytes consumed.
    func consume(_ n: Int) {
        precondition(n <= available, "consuming \(n) of \(available) bytes")
        start += n
        offset += UInt64(n)
    }

    /// Calls `body` with the available bytes.
    func withAvailable<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let (s, e) = (start, end)
        return try buffer.withBytes { (raw) throws(E) in try body(UnsafeRawBufferPointer(rebasing: raw[s..<e])) }
    }

    /// Makes at least `n` bytes available if the file has them; returns whether it does.
    func ensure(_ n: Int) throws(TraceError) -> Bool {
        while available < n {
            if try !fill() { return false }
        }
        return true
    }

    /// Opens `path` for reading; `-` is standard input. What cannot be read twice (standard
    /// input, a pipe, `<(cat trace)`) is spooled to an unlinked temporary file first, as a
    /// replay reads a trace twice.
    static func open(_ path: String) throws(TraceError) -> ByteInput {
        if path == "-" { return try spool(STDIN_FILENO, name: "<stdin>") }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw TraceError.io(file: path, "cannot open")
        }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw TraceError(file: path, .file, .io, "is a directory")
        }
        if (st.st_mode & S_IFMT) != S_IFREG && lseek(fd, 0, SEEK_CUR) < 0 {
            defer { close(fd) }
            return try spool(fd, name: path)
        }
        return ByteInput(fd: fd, name: path, ownsFD: true)
    }

    private static func spool(_ source: Int32, name: String) throws(TraceError) -> ByteInput {
        var template = Array("/tmp/pinreplay-input.XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw TraceError.io(file: name, "cannot create a temporary file") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { readRetrying(source, $0.baseAddress!, $0.count) }
            guard n >= 0 else {
                let error = TraceError.io(file: name, "read failed")
                close(fd)
                throw error
            }
            if n == 0 { break }
            try writeAll(fd, chunk[0..<n], name: name)
        }
        lseek(fd, 0, SEEK_SET)
        return ByteInput(fd: fd, name: name, ownsFD: true)
    }

    /// Rewinds to the start of the file (for a second pass).
    func rewind() throws(TraceError) {
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw TraceError.io(file: name, "cannot rewind") }
        start = 0
        end = 0
        offset = 0
        atEOF = false
    }

    /// The size of the file, if it is a regular file.
    var fileSize: UInt64? {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return UInt64(st.st_size)
    }
}

/// `read(2)` into `count` bytes at `buffer`, retried while a signal interrupts it: the bytes
/// read (0 at the end of the input), or -1 with `errno` set. With `writeAll`, the one place
/// the tool's reads and writes handle EINTR and short counts.
public func readRetrying(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    while true {
        let n = read(fd, buffer, count)
        if n < 0 && errno == EINTR { continue }
        return n
    }
}

/// Writes all of `bytes` to `fd` (short writes and EINTR retried).
public func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, name: String) throws(TraceError) {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + done, raw.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw TraceError.io(file: name, "write failed")
        }
        done += n
    }
}

/// An unlinked temporary file, open for reading and writing: gone when closed.
public func temporaryFile() throws(TraceError) -> Int32 {
    var template = Array("/tmp/pinreplay-spool.XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw TraceError.io(file: "/tmp", "cannot create a temporary file") }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return fd
}

/// Copies file `from`, from its start, to `to` (standard output: "<stdout>" in errors).
public func copyAll(from: Int32, to: Int32) throws(TraceError) {
    lseek(from, 0, SEEK_SET)
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { readRetrying(from, $0.baseAddress!, $0.count) }
        guard n >= 0 else { throw TraceError.io(file: "<temporary file>", "read failed") }
        if n == 0 { return }
        try writeAll(to, chunk[0..<n], name: to == 1 ? "<stdout>" : "<output>")
    }
}

/// An output file written atomically: bytes go to a temporary file beside it, renamed into
/// place by `commit()`; `-` is standard output. Dropped without `commit()`, or when the process
/// gets SIGINT, SIGTERM or SIGHUP, nothing is left. Only a regular file (or a new name) is
/// replaced so: a device, a FIFO or a symlink (`/dev/null`, `/dev/stdout`) is written in place.
public final class AtomicOutput {
    /// The path, as messages spell it.
    public let name: String
    private let fd: Int32
    private let tempPath: String?
    private var committed = false

    /// Opens a temporary file beside `path` (or `path` itself for a device such as /dev/null).
    public init(path: String) throws(TraceError) {
        name = path == "-" ? "<stdout>" : path
        if path == "-" {
            fd = STDOUT_FILENO
            tempPath = nil
            return
        }
        var st = stat()
        if lstat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
            guard (st.st_mode & S_IFMT) != S_IFDIR else { throw TraceError(file: path, .file, .io, "is a directory") }
            let fd = Glibc.open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
            guard fd >= 0 else { throw TraceError.io(file: path, "cannot open") }
            self.fd = fd
            tempPath = nil
            return
        }
        var template = Array((path + ".tmp.XXXXXX").utf8CString)
        let fd = TemporaryFiles.guarded {
            let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd >= 0 { TemporaryFiles.register(template) }
            return fd
        }
        guard fd >= 0 else {
            throw TraceError.io(file: path, "cannot create")
        }
        fchmod(fd, 0o644)
        self.fd = fd
        tempPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit {
        if let tempPath, !committed {
            close(fd)
            unlink(tempPath)
            TemporaryFiles.unregister(tempPath)
        } else if tempPath == nil && fd != STDOUT_FILENO && !committed {
            close(fd)
        }
    }

    /// Where the bytes go, for a writer that streams to the file itself (the jsonl stream).
    public var fileDescriptor: Int32 { fd }

    /// Writes all of `bytes`.
    public func write(_ bytes: [UInt8]) throws(TraceError) {
        try writeAll(fd, bytes[...], name: name)
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: ArraySlice<UInt8>) throws(TraceError) {
        try writeAll(fd, bytes, name: name)
    }

    /// Flushes and renames the temporary file into place (or closes the file written in place).
    public func commit() throws(TraceError) {
        guard let tempPath else {
            if fd != STDOUT_FILENO {
                committed = true
                guard close(fd) == 0 else {
                    throw TraceError.io(file: name, "cannot write")
                }
            }
            return
        }
        defer { TemporaryFiles.unregister(tempPath) }
        guard fsync(fd) == 0, close(fd) == 0 else {
            let error = TraceError.io(file: name, "cannot write")
            unlink(tempPath)
            committed = true
            throw error
        }
        committed = true
        guard rename(tempPath, name) == 0 else {
            let error = TraceError.io(file: name, "cannot rename into place")
            unlink(tempPath)
            throw error
        }
    }
}

/// Temporary files and directories to remove if the process is interrupted: a SIGINT, SIGTERM
/// or SIGHUP handler unlinks them (newest first, so a directory's files go before it) and then
/// dies of the same signal. The table is fixed-size C memory, so the handler only reads
/// pointers and calls async-signal-safe `unlink`/`rmdir`; registration blocks those signals.
public enum TemporaryFiles {
    private static let slots = 256
    nonisolated(unsafe) private static let table: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let t = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: slots)
        t.initialize(repeating: nil, count: slots)
        return t
    }()
    nonisolated(unsafe) private static var installed = false

    /// Runs `body` with the cleanup signals blocked, so the table never changes under the handler.
    public static func guarded<R>(_ body: () -> R) -> R {
        var block = sigset_t()
        var old = sigset_t()
        sigemptyset(&block)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&block, s) }
        pthread_sigmask(SIG_BLOCK, &block, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        return body()
    }

    /// Adds a path (a NUL-terminated C string) to remove on a signal.
    public static func register(_ path: [CChar]) {
        guarded {
            if !installed {
                installed = true
                // A signal the caller ignores (nohup's SIGHUP) stays ignored.
                for s in [SIGINT, SIGTERM, SIGHUP] {
                    let previous = signal(s, cleanupHandler)
                    if unsafeBitCast(previous, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { signal(s, SIG_IGN) }
                }
            }
            for i in 0..<slots where table[i] == nil {
                table[i] = path.withUnsafeBufferPointer { strdup($0.baseAddress!) }
                return
            }
        }
    }

    /// Marks `path` for removal if the process is killed before it is renamed into place.
    public static func register(_ path: String) { register(Array(path.utf8CString)) }

    /// Forgets a path (it was renamed into place or removed).
    public static func unregister(_ path: String) {
        guarded {
            for i in 0..<slots {
                if let p = table[i], String(cString: p) == path {
                    table[i] = nil
                    free(p)
                    return
                }
            }
        }
    }

    private static let cleanupHandler: @convention(c) (Int32) -> Void = { sig in
        var i = TemporaryFiles.slots - 1
        while i >= 0 {
            if let p = TemporaryFiles.table[i], unlink(p) != 0 { rmdir(p) }
            i -= 1
        }
        signal(sig, SIG_DFL)
        raise(sig)
    }
}

/// Flushes standard output (what `print` wrote) and says whether every write to it worked.
public func standardOutputFailure() -> String? {
    errno = 0
    if fflush(stdout) != 0 || ferror(stdout) != 0 {
        let e = errno
        return "cannot write standard output: " + (e != 0 ? String(cString: strerror(e)) : "write error")
    }
    return nil
}

/// Replaces directory `dir` with one holding exactly `files`, all at once: the new files are
/// written into a temporary directory beside it, which then trades places with the old one in
/// a single `renameat2(RENAME_EXCHANGE)`, so a reader (or a kill) sees the old set or the new
/// one, never a mix. Where the kernel lacks the exchange, two renames, and a kill between them
/// leaves `dir` missing, which a check reports, rather than mixed.
public func replaceDirectory(_ dir: String, files: [(name: String, bytes: [UInt8])]) throws(TraceError) {
    var template = Array((dir + ".tmp.XXXXXX").utf8CString)
    let made = TemporaryFiles.guarded { () -> Bool in
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { return false }
        TemporaryFiles.register(template)
        return true
    }
    guard made else { throw TraceError.io(file: dir, "cannot create a directory beside it") }
    let tmp = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    func removeTemporary() {
        removeDirectory(tmp)
        for f in files { TemporaryFiles.unregister(tmp + "/" + f.name) }
        TemporaryFiles.unregister(tmp)
    }
    do throws(TraceError) {
        for f in files {
            let path = tmp + "/" + f.name
            TemporaryFiles.register(path)
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw TraceError.io(file: path, "cannot create") }
            defer { close(fd) }
            try writeAll(fd, f.bytes[...], name: path)
            guard fsync(fd) == 0 else { throw TraceError.io(file: path, "cannot write") }
        }
        var st = stat()
        if stat(dir, &st) != 0 {
            guard rename(tmp, dir) == 0 else { throw TraceError.io(file: dir, "cannot rename into place") }
            for f in files { TemporaryFiles.unregister(tmp + "/" + f.name) }
            TemporaryFiles.unregister(tmp)
            return
        }
        if !exchange(tmp, dir) {
            // No atomic exchange: move the old one aside, the new one in.
            let old = tmp + ".old"
            guard rename(dir, old) == 0 else { throw TraceError.io(file: dir, "cannot move aside") }
            guard rename(tmp, dir) == 0 else { throw TraceError.io(file: dir, "cannot rename into place") }
            guard rename(old, tmp) == 0 else { throw TraceError.io(file: old, "cannot remove") }
        }
        // tmp now holds the old set.
        removeTemporary()
    } catch {
        removeTemporary()
        throw error
    }
}

/// Removes a directory of plain files (a scratch or temporary directory), files first.
public func removeDirectory(_ dir: String) {
    if let d = opendir(dir) {
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { unlink(dir + "/" + name) }
        }
        closedir(d)
    }
    rmdir(dir)
}

/// `renameat2(from, to, RENAME_EXCHANGE)`, looked up at run time (Swift's Glibc module does
/// not declare it); false when the C library or the file system lacks it.
private func exchange(_ a: String, _ b: String) -> Bool {
    typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
    let renameat2 = unsafeBitCast(sym, to: RenameAt2.self)
    let RENAME_EXCHANGE: UInt32 = 1 << 1
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0
}

#if canImport(Glibc)
    import Glibc
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
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress! + end, raw.count - end) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TraceError(file: name, .byte(offset + UInt64(available)), "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                atEOF = true
                return false
            }
            end += n
            return true
        }
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

    /// Opens `path` for reading; `-` is standard input, spooled to an unlinked temporary file so
    /// that it can be read more than once.
    static func open(_ path: String) throws(TraceError) -> ByteInput {
        if path == "-" { return try spoolStandardInput() }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw TraceError(file: path, .file, "cannot open: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw TraceError(file: path, .file, "is a directory")
        }
        return ByteInput(fd: fd, name: path, ownsFD: true)
    }

    private static func spoolStandardInput() throws(TraceError) -> ByteInput {
        var template = Array("/tmp/pinreplay-stdin.XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw TraceError(file: "<stdin>", .file, "cannot create a temporary file") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { close(fd); throw TraceError(file: "<stdin>", .file, "read failed") }
            if n == 0 { break }
            try writeAll(fd, chunk[0..<n], name: "<stdin>")
        }
        lseek(fd, 0, SEEK_SET)
        return ByteInput(fd: fd, name: "<stdin>", ownsFD: true)
    }

    /// Rewinds to the start of the file (for a second pass).
    func rewind() throws(TraceError) {
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw TraceError(file: name, .file, "cannot rewind") }
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

/// Writes all of `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, name: String) throws(TraceError) {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + done, raw.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw TraceError(file: name, .file, "write failed: \(String(cString: strerror(errno)))")
        }
        done += n
    }
}

/// An output file written atomically: bytes go to a temporary file beside it, renamed into
/// place by `commit()`; `-` is standard output. Dropped without `commit()`, nothing is left.
public final class AtomicOutput {
    public let name: String
    private let fd: Int32
    private let tempPath: String?
    private var committed = false

    public init(path: String) throws(TraceError) {
        name = path == "-" ? "<stdout>" : path
        if path == "-" {
            fd = STDOUT_FILENO
            tempPath = nil
            return
        }
        var template = Array((path + ".tmp.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw TraceError(file: path, .file, "cannot create: \(String(cString: strerror(errno)))")
        }
        fchmod(fd, 0o644)
        self.fd = fd
        tempPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit {
        if let tempPath, !committed {
            close(fd)
            unlink(tempPath)
        }
    }

    public func write(_ bytes: [UInt8]) throws(TraceError) {
        try writeAll(fd, bytes[...], name: name)
    }

    public func write(_ bytes: ArraySlice<UInt8>) throws(TraceError) {
        try writeAll(fd, bytes, name: name)
    }

    /// Flushes and renames the temporary file into place.
    public func commit() throws(TraceError) {
        guard let tempPath else { return }
        guard fsync(fd) == 0, close(fd) == 0 else {
            unlink(tempPath)
            committed = true
            throw TraceError(file: name, .file, "cannot write: \(String(cString: strerror(errno)))")
        }
        committed = true
        guard rename(tempPath, name) == 0 else {
            unlink(tempPath)
            throw TraceError(file: name, .file, "cannot rename into place: \(String(cString: strerror(errno)))")
        }
    }
}

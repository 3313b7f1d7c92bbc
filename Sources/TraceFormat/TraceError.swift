#if canImport(Glibc)
    @preconcurrency import Glibc
#endif

/// Where in a trace something is wrong.
public enum TraceLocation: Equatable, Sendable {
    /// A line of a text trace (1-based).
    case line(Int)
    /// A byte offset in a binary trace file.
    case byte(UInt64)
    /// A record of a binary trace (0-based index) and its offset in the decompressed stream.
    case record(index: UInt64, contentOffset: UInt64)
    /// The file as a whole (unreadable, empty).
    case file
}

/// A malformed, truncated or corrupt trace, or a file that cannot be read or written: which
/// file, where, what kind of failure, and what is wrong, in one line; with the system's or
/// libzstd's error beneath it where there is one.
public struct TraceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of failure it is: what a caller may act on without reading the message.
    public enum Code: String, Equatable, Sendable {
        /// The file cannot be opened, read, written, created or renamed.
        case io
        /// The input ends before the format says it does.
        case truncated
        /// Framing, checksums or compressed data are damaged.
        case corrupt
        /// The text (a trace, or another tool's output) does not parse.
        case syntax
        /// A statement breaks a rule of the format.
        case invalid
        /// The simulated world cannot follow the trace (a pte outside every VMA).
        case impossible
        /// A statement asks for more than the page budget (`--max-pages`).
        case tooLarge
        /// libzstd failed to start or to compress.
        case compression
    }

    /// The error beneath, where the system or a library gave one.
    public enum Cause: Equatable, Sendable {
        /// `errno` of the failed system call.
        case errno(Int32)
        /// libzstd's error code and name.
        case zstd(code: Int, name: String)
    }

    /// The file as the user named it (`<stdin>` for standard input).
    public var file: String
    /// Where in it: a line, a byte, a record, or the file as a whole.
    public var location: TraceLocation
    /// What kind of problem it is.
    public var code: Code
    /// What is wrong, for a person.
    public var message: String
    /// The underlying system or zstd error, if one caused it.
    public var cause: Cause?

    /// An error in `file` at `location`.
    public init(file: String, _ location: TraceLocation, _ code: Code, _ message: String, cause: Cause? = nil) {
        self.file = file
        self.location = location
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// A failed system call: `what` ("cannot open") and `strerror(errno)`, errno kept as the
    /// cause. Read `errno` before anything else can change it.
    public static func io(file: String, _ what: String, at location: TraceLocation = .file) -> TraceError {
        let e = errno
        return TraceError(file: file, location, .io, "\(what): \(String(cString: strerror(e)))", cause: .errno(e))
    }

    public var description: String {
        switch location {
        case .line(let n): "\(file):\(n): \(message)"
        case .byte(let off): "\(file): byte \(off): \(message)"
        case let .record(index, off): "\(file): record \(index) (stream byte \(off)): \(message)"
        case .file: "\(file): \(message)"
        }
    }
}

/// A semantic problem with one statement, before it is given a location.
struct StatementProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

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

/// A malformed, truncated or corrupt trace: which file, where, and what is wrong, in one line.
public struct TraceError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var location: TraceLocation
    public var message: String

    public init(file: String, _ location: TraceLocation, _ message: String) {
        self.file = file
        self.location = location
        self.message = message
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

/// The two forms of a trace.
public enum TraceForm: String, Sendable, CaseIterable {
    /// The line-based text form of SPEC.md §5.
    case text
    /// The zstd-compressed record form of docs/FORMAT.md.
    case binary

    /// The form a file name asks for: `.txt` is text, `.vptr` binary, anything else nil.
    public static func fromExtension(_ path: String) -> TraceForm? {
        if path.hasSuffix(".txt") { return .text }
        if path.hasSuffix(".vptr") { return .binary }
        return nil
    }
}

/// Reads a trace of either form, detected by content, one statement (event) at a time with
/// bounded memory. `-` reads standard input.
public final class TraceReader {
    private enum Source {
        case text(TextSource)
        case binary(BinarySource)
    }

    private let input: ByteInput
    /// A rewind restarts the source in place, keeping its buffers.
    private let source: Source
    /// The form the file is in, found from its content.
    public let form: TraceForm
    /// Events returned so far; the last one returned is event number `eventCount`.
    public private(set) var eventCount = 0

    /// The file's name as errors spell it.
    public var file: String { input.name }
    /// The file's size in bytes, when it is a regular file.
    public var fileSize: UInt64? { input.fileSize }

    /// Opens the trace at `path`; `readLimit` caps the bytes one read takes (tests feed the
    /// decoders in chunks of a few bytes to reach every boundary).
    public init(path: String, readLimit: Int = .max) throws(TraceError) {
        input = try ByteInput.open(path)
        input.readLimit = max(1, readLimit)
        let isBinary = try Self.looksBinary(input)
        form = isBinary ? .binary : .text
        source = isBinary ? .binary(try BinarySource(input)) : .text(TextSource(input))
    }

    /// Binary when the header frame's magic or the trace magic is where it belongs, so that a
    /// damaged header is reported as such rather than as text that does not parse.
    /// A file shorter than the magic but matching its first bytes is a binary trace cut short.
    private static func looksBinary(_ input: ByteInput) throws(TraceError) -> Bool {
        _ = try input.ensure(16)
        if input.available == 0 { throw TraceError(file: input.name, .byte(0), .truncated, "empty file: not a trace") }
        return input.withAvailable { h in
            let magic = withUnsafeBytes(of: BinaryLayout.headerFrameMagic.littleEndian) { Array($0) }
            if h.count < 4 && Array(h) == Array(magic[..<h.count]) { return true }
            if h.count >= 4 && BinaryLayout.get(h, 0, as: UInt32.self) == BinaryLayout.headerFrameMagic { return true }
            return h.count >= 16 && Array(h[8..<16]) == BinaryLayout.magic
        }
    }

    /// Records of types this reader does not know, skipped so far (binary form only).
    public var skippedRecords: UInt64 {
        if case .binary(let b) = source { return b.skippedRecords }
        return 0
    }

    /// The next event, or nil at the (verified) end of the trace.
    public func next() throws(TraceError) -> Statement? {
        let s: Statement?
        switch source {
        case .text(let t): s = try t.next()
        case .binary(let b): s = try b.next()
        }
        if case .some = s { eventCount &+= 1 }
        return s
    }

    /// Bytes of statements decoded so far: the record stream of a binary trace, the lines
    /// of a text one.
    public var decodedBytes: UInt64 {
        switch source {
        case .text(let t): t.bytesRead
        case .binary(let b): b.contentOffset
        }
    }

    /// Where the last event returned came from: its line, or its record.
    public var lastLocation: TraceLocation {
        switch source {
        case .text(let t): .line(t.parser.lineNumber)
        case .binary(let b): .record(index: b.lastRecord.index, contentOffset: b.lastRecord.offset)
        }
    }

    /// Reads the whole trace once, checking everything, and returns the number of events.
    /// Leaves the reader at the start again, so a replay never acts on a stream that turns
    /// out to be corrupt or truncated further on.
    public func verify() throws(TraceError) -> Int {
        while let _ = try next() {}
        let count = eventCount
        try rewind()
        return count
    }

    /// Checks what can be checked without decoding statements, and returns the number of
    /// records: for a binary trace the header, every zstd frame and its checksum, the record
    /// framing, the trailer's count and CRC-32 (so nothing truncated or corrupt gets past);
    /// for a text trace, everything (`verify()`). Leaves the reader at the start again. A
    /// statement a binary trace's checksums vouch for but the format rejects is reported when
    /// it is read.
    public func verifyFraming() throws(TraceError) -> UInt64 {
        guard case .binary(let b) = source else { return UInt64(try verify()) }
        b.framingOnly = true
        while try b.next() != nil {}
        let count = b.recordIndex
        try rewind()
        return count
    }

    /// Starts over from the first event.
    public func rewind() throws(TraceError) {
        eventCount = 0
        switch source {
        case .text(let t):
            try input.rewind()
            t.restart()
        case .binary(let b):
            try b.restart()
        }
    }
}

/// Lines of a text trace through the parser.
final class TextSource {
    private let input: ByteInput
    private(set) var parser: TextParser
    private var done = false
    private(set) var bytesRead: UInt64 = 0

    init(_ input: ByteInput) {
        self.input = input
        parser = TextParser(file: input.name)
    }

    /// Starts over at the first line, once the input has been rewound.
    func restart() {
        parser = TextParser(file: input.name)
        done = false
        bytesRead = 0
    }

    func next() throws(TraceError) -> Statement? {
        while !done {
            guard let length = try lineLength() else {
                done = true
                try parser.finish()
                return nil
            }
            let s = try input.withAvailable { (raw) throws(TraceError) in
                try parser.parse(bytes: raw[..<length].bindMemory(to: UInt8.self))
            }
            let skip = length < input.available ? 1 : 0
            input.consume(length + skip)
            bytesRead += UInt64(length + skip)
            if let s { return s }
        }
        return nil
    }

    /// The length of the next line in the buffer (its newline excluded, filling as needed),
    /// or nil at the end of the input. A line with no newline ends the input.
    private func lineLength() throws(TraceError) -> Int? {
        var scanned = 0
        while true {
            let newline: Int? = input.withAvailable { raw in
                raw[scanned...].firstIndex(of: UInt8(ascii: "\n"))
            }
            if let newline { return newline }
            scanned = input.available
            if scanned > TextParser.maxLine {
                throw TraceError(file: input.name, .line(parser.lineNumber + 1), .syntax, "line longer than \(TextParser.maxLine) bytes")
            }
            if try !input.fill() {
                return input.available == 0 ? nil : input.available
            }
        }
    }
}

/// Writes a trace event by event, validating each statement, atomically: the file appears
/// whole under its name only when `finish()` succeeds. `-` writes standard output.
public final class TraceWriter {
    private enum Sink {
        case text(TextSink)
        case binary(BinarySink)
    }

    private var sink: Sink
    private var validator = StatementValidator()
    /// The form being written.
    public let form: TraceForm
    /// The path being written.
    public let file: String
    /// Statements written so far.
    public private(set) var count: UInt64 = 0
    /// Bytes written, once finished.
    public private(set) var bytesWritten: UInt64 = 0

    /// Starts writing `path` atomically: nothing appears there before `finish()`.
    public init(path: String, form: TraceForm) throws(TraceError) {
        let out = try AtomicOutput(path: path)
        self.form = form
        file = out.name
        switch form {
        case .text: sink = .text(TextSink(out))
        case .binary: sink = .binary(try BinarySink(out))
        }
    }

    /// Appends `s`, refusing a statement the format rules reject.
    public func write(_ s: Statement) throws(TraceError) {
        do {
            try validator.check(s)
        } catch {
            throw TraceError(
                file: file, .record(index: count, contentOffset: 0), .invalid, "refusing to write an invalid statement: \(error.message)")
        }
        count += 1
        switch sink {
        case .text(let t):
            try t.write(s.canonicalText)
        case .binary(let b):
            try b.write(s)
        }
    }

    /// Writes one record as given, unchecked: a type this version does not define (to test that
    /// readers skip it) or a known type with any payload (the fuzzers).
    public func writeUnknownRecord(type: UInt64, payload: [UInt8]) {
        guard case .binary(let b) = sink else { return }
        b.writeRaw(type: type, payload: payload)
    }

    /// Completes the file and moves it into place.
    public func finish() throws(TraceError) {
        switch sink {
        case .text(let t):
            try t.finish()
            bytesWritten = t.bytesWritten
        case .binary(let b):
            try b.finish()
            bytesWritten = b.bytesWritten
        }
    }
}

/// Canonical text lines, buffered.
final class TextSink {
    private let out: AtomicOutput
    private var buffer: [UInt8] = []
    private(set) var bytesWritten: UInt64 = 0

    init(_ out: AtomicOutput) {
        self.out = out
        buffer.reserveCapacity(1 << 16)
        buffer += (textHeader + "\n").utf8
    }

    func write(_ line: String) throws(TraceError) {
        buffer += line.utf8
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 1 << 16 { try flush() }
    }

    private func flush() throws(TraceError) {
        try out.write(buffer)
        bytesWritten += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    func finish() throws(TraceError) {
        try flush()
        try out.commit()
    }
}

import Zstd

// The binary form (docs/FORMAT.md): a header in a zstd skippable frame, zstd frames of records
// with content checksums, and a trailer in a skippable frame with the record count and a CRC-32
// of every byte before it. Plain `zstd -d` decodes a file to its record stream.

enum BinaryLayout {
    /// Skippable frame magic of the header (`0x184D2A50`).
    static let headerFrameMagic: UInt32 = 0x184D_2A50
    /// Skippable frame magic of the trailer (`0x184D2A5E`).
    static let trailerFrameMagic: UInt32 = 0x184D_2A5E
    /// A zstd data frame.
    static let zstdFrameMagic: UInt32 = 0xFD2F_B528
    /// First bytes of the header payload; `\r\n` and `\x1a` catch text-mode transfer damage.
    static let magic: [UInt8] = [0x89, 0x56, 0x50, 0x54, 0x52, 0x0D, 0x0A, 0x1A]  // "\x89VPTR\r\n\x1a"
    static let trailerMagic: [UInt8] = Array("VPTR-END".utf8)
    static let version: UInt16 = 1
    static let headerPayload = 16
    static let trailerPayload = 24
    static let headerSize = 8 + headerPayload
    static let trailerSize = 8 + trailerPayload
    /// A frame is closed after this much record content, so memory stays bounded and a cut at a
    /// frame boundary is still a cut the trailer catches.
    static let frameContent = 1 << 20

    static func header() -> [UInt8] {
        var h: [UInt8] = []
        put32(headerFrameMagic, &h)
        put32(UInt32(headerPayload), &h)
        h += magic
        put16(version, &h)
        put16(0, &h)  // flags: none defined, all reserved
        put32(0, &h)  // reserved
        return h
    }

    static func trailer(records: UInt64, crc: UInt32) -> [UInt8] {
        var t: [UInt8] = []
        put32(trailerFrameMagic, &t)
        put32(UInt32(trailerPayload), &t)
        t += trailerMagic
        put64(records, &t)
        put32(crc, &t)
        put32(0, &t)  // reserved
        return t
    }

    static func put16(_ v: UInt16, _ out: inout [UInt8]) { for i in 0..<2 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    static func put32(_ v: UInt32, _ out: inout [UInt8]) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    static func put64(_ v: UInt64, _ out: inout [UInt8]) { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }

    static func get<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _ at: Int, as: T.Type) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(bytes[at + i]) << (8 * i) }
        return v
    }
}

/// Writes records into zstd frames, then the trailer.
final class BinarySink {
    private let out: AtomicOutput
    private let compressor: ZstdCompressor
    private var encoder = RecordEncoder()
    private var content: [UInt8] = []
    private var frameBytes = 0
    private var compressed: [UInt8] = []
    private var crc = CRC32()
    private(set) var records: UInt64 = 0
    private(set) var bytesWritten: UInt64 = 0

    init(_ out: AtomicOutput) throws(TraceError) {
        self.out = out
        do {
            compressor = try ZstdCompressor(level: 3)
        } catch {
            throw TraceError(
                file: out.name, .file, .compression, "cannot start compression: \(error)", cause: .zstd(code: error.code, name: error.name))
        }
        emit(BinaryLayout.header())
    }

    func write(_ s: Statement) throws(TraceError) {
        encoder.encode(s, into: &content)
        records += 1
        if content.count >= 1 << 16 { try compressPending(endFrame: frameBytes + content.count >= BinaryLayout.frameContent) }
    }

    /// Writes raw record bytes (an unknown record type, for tests of forward compatibility).
    func writeRaw(type: UInt64, payload: [UInt8]) {
        appendVarint(type, to: &content)
        appendVarint(UInt64(payload.count), to: &content)
        content += payload
        records += 1
    }

    func finish() throws(TraceError) {
        try compressPending(endFrame: true)
        let trailer = BinaryLayout.trailer(records: records, crc: crc.value)
        try out.write(compressed)
        try out.write(trailer)
        bytesWritten += UInt64(trailer.count)
        compressed.removeAll()
        try out.commit()
    }

    private func compressPending(endFrame: Bool) throws(TraceError) {
        guard !content.isEmpty || (endFrame && frameBytes > 0) else { return }
        var produced: [UInt8] = []
        do {
            try content.withBytes { (raw) throws(ZstdError) in
                try compressor.compress(raw, endFrame: endFrame, into: &produced)
            }
        } catch {
            throw TraceError(
                file: out.name, .file, .compression, "compression failed: \(error)", cause: .zstd(code: error.code, name: error.name))
        }
        frameBytes = endFrame ? 0 : frameBytes + content.count
        content.removeAll(keepingCapacity: true)
        emit(produced)
        if compressed.count >= 1 << 16 {
            try out.write(compressed)
            compressed.removeAll(keepingCapacity: true)
        }
    }

    private func emit(_ bytes: [UInt8]) {
        crc.update(bytes)
        compressed += bytes
        bytesWritten += UInt64(bytes.count)
    }
}

/// Reads a binary trace as a stream of statements, with bounded memory, checking everything:
/// header, zstd frames and their checksums, records, the trailer's count and CRC.
final class BinarySource {
    private let input: ByteInput
    private let dctx: ZstdDecompressor
    /// Reads and decompresses the frames after the header, ahead of the parser.
    private var frames: FrameReader
    /// The reader's last event was a failure: what every later call reports again.
    private var failure: TraceError?
    private var decoder = RecordDecoder()
    private var validator = StatementValidator()
    /// Decompressed bytes not yet parsed: `content[cStart..<cEnd]`. Raw storage, owned here,
    /// so the record loop reads it through a pointer; its last `PayloadReader.slack` bytes are
    /// never written, only read past a record's end.
    private var content: UnsafeMutableRawBufferPointer
    /// The bytes of `content` the decompressor may fill.
    private var capacity: Int { content.count - PayloadReader.slack }
    private var cStart = 0
    private var cEnd = 0
    private var finished = false
    /// Records parsed so far, known or not.
    private(set) var recordIndex: UInt64 = 0
    /// Records of a type this reader does not know, skipped (forward compatibility).
    private(set) var skippedRecords: UInt64 = 0
    /// Offset in the decompressed stream of the next record.
    private(set) var contentOffset: UInt64 = 0
    /// Where the last record returned started.
    private(set) var lastRecord: (index: UInt64, offset: UInt64) = (0, 0)
    /// Check framing, checksums and the trailer only: records are counted, not decoded.
    var framingOnly = false

    init(_ input: ByteInput) throws(TraceError) {
        self.input = input
        do {
            dctx = try ZstdDecompressor(windowLogMax: 23)
        } catch {
            throw TraceError(
                file: input.name, .file, .compression, "cannot start decompression: \(error)",
                cause: .zstd(code: error.code, name: error.name))
        }
        frames = FrameReader(input: input, dctx: dctx, crc: try Self.readHeader(input))
        // Allocated last: an init that throws runs no deinit to free it.
        content = Self.zeroed((1 << 18) + PayloadReader.slack)
        frames.start()
    }

    deinit {
        frames.stop()
        content.deallocate()
    }

    /// Rewinds the input and starts over at the header.
    func restart() throws(TraceError) {
        frames.stop()
        try input.rewind()
        dctx.reset()
        decoder = RecordDecoder()
        validator = StatementValidator()
        (cStart, cEnd, finished, failure) = (0, 0, false, nil)
        (recordIndex, skippedRecords, contentOffset, lastRecord) = (0, 0, 0, (0, 0))
        framingOnly = false
        frames = FrameReader(input: input, dctx: dctx, crc: try Self.readHeader(input))
        frames.start()
    }

    private static func zeroed(_ count: Int) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        return buffer
    }

    private func fail(_ at: UInt64, _ code: TraceError.Code, _ message: String) -> TraceError {
        input.failure(at, code, message)
    }

    /// Checks the header and returns the CRC-32 of its bytes.
    private static func readHeader(_ input: ByteInput) throws(TraceError) -> CRC32 {
        func fail(_ at: UInt64, _ code: TraceError.Code, _ message: String) -> TraceError { input.failure(at, code, message) }
        var crc = CRC32()
        guard try input.ensure(BinaryLayout.headerSize) else {
            throw fail(UInt64(input.available), .truncated, "file ends inside the \(BinaryLayout.headerSize)-byte header (truncated)")
        }
        try input.withAvailable { (h) throws(TraceError) in
            let frameMagic = BinaryLayout.get(h, 0, as: UInt32.self)
            guard frameMagic == BinaryLayout.headerFrameMagic else { throw fail(0, .corrupt, "not a pinreplay binary trace (bad magic)") }
            guard BinaryLayout.get(h, 4, as: UInt32.self) == UInt32(BinaryLayout.headerPayload) else {
                throw fail(4, .corrupt, "header frame size is not \(BinaryLayout.headerPayload)")
            }
            for i in 0..<8 where h[8 + i] != BinaryLayout.magic[i] {
                throw fail(UInt64(8 + i), .corrupt, "not a pinreplay binary trace (bad magic)")
            }
            let version = BinaryLayout.get(h, 16, as: UInt16.self)
            guard version == BinaryLayout.version else {
                throw fail(16, .corrupt, "unsupported format version \(version) (this reader knows \(BinaryLayout.version))")
            }
            guard BinaryLayout.get(h, 18, as: UInt16.self) == 0 else { throw fail(18, .corrupt, "unknown format flags set") }
            guard BinaryLayout.get(h, 20, as: UInt32.self) == 0 else { throw fail(20, .corrupt, "reserved header bytes are not zero") }
            crc.update(UnsafeRawBufferPointer(rebasing: h[0..<BinaryLayout.headerSize]))
        }
        input.consume(BinaryLayout.headerSize)
        return crc
    }

    /// The next statement, or nil after a complete, verified trailer.
    func next() throws(TraceError) -> Statement? {
        while true {
            let s = try nextRecord()
            if case .some = s { return s }
            if finished { return nil }
            try refill()
        }
    }

    /// Parses complete records out of the content buffer until one is a statement this
    /// version knows; nil when more content is needed. This is the decoder's hot path: one
    /// pointer, no closure and no intermediate enum per record, so a statement is built once
    /// and moved out.
    @inline(__always)
    private func nextRecord() throws(TraceError) -> Statement? {
        while cStart < cEnd {
            var r = PayloadReader(UnsafeRawBufferPointer(start: content.baseAddress! + cStart, count: cEnd - cStart))
            guard let type = try? r.varint(), let length = try? r.varint() else {
                if cEnd - cStart >= 20 { throw recordError(.corrupt, "record header is not two varints") }
                return nil
            }
            guard length <= UInt64(maxRecordPayload) else {
                throw recordError(.corrupt, "record length \(length) is past the \(maxRecordPayload)-byte limit")
            }
            guard r.bytes.count - r.pos >= Int(length) else { return nil }
            let size = r.pos + Int(length)
            let payload = UnsafeRawBufferPointer(start: r.bytes.baseAddress! + r.pos, count: Int(length))
            let at = (recordIndex, contentOffset)
            cStart &+= size
            contentOffset &+= UInt64(size)
            recordIndex &+= 1
            if framingOnly { continue }
            guard let known = RecordType(rawValue: type) else {
                skippedRecords += 1
                continue
            }
            lastRecord = at
            do throws(StatementProblem) {
                let statement = try decoder.decode(known, payload: payload)
                try validator.check(statement)
                return statement
            } catch {
                throw TraceError(file: input.name, .record(index: at.0, contentOffset: at.1), .invalid, error.message)
            }
        }
        return nil
    }

    private func recordError(_ code: TraceError.Code, _ message: String) -> TraceError {
        TraceError(file: input.name, .record(index: recordIndex, contentOffset: contentOffset), code, message)
    }

    /// Takes the frame reader's next event: more content after what is left of the last, or
    /// the end of the stream, checked.
    private func refill() throws(TraceError) {
        if let failure { throw failure }
        switch frames.take() {
        case .content(let chunk):
            append(chunk)
        case .endsBetweenFrames(let at):
            failure = fail(at, .truncated, "file ends after record \(recordIndex) without its trailer (truncated)")
        case .failure(let error):
            failure = error
        case let .trailer(bytes, at, crc, bytesAfter):
            do throws(TraceError) {
                try checkTrailer(bytes, at: at, crc: crc, bytesAfter: bytesAfter)
                finished = true
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Appends `chunk` to the unparsed content, moving the partial record left over to the
    /// front; grows the buffer only for a record larger than it (at most `maxRecordPayload`).
    private func append(_ chunk: [UInt8]) {
        let pending = cEnd - cStart
        if capacity - cEnd < chunk.count {
            if capacity - pending < chunk.count {
                let grown = Self.zeroed(pending + max(chunk.count, ZstdDecompressor.recommendedOutputSize) + PayloadReader.slack)
                grown.baseAddress!.copyMemory(from: content.baseAddress! + cStart, byteCount: pending)
                content.deallocate()
                content = grown
            } else {
                content.baseAddress!.copyMemory(from: content.baseAddress! + cStart, byteCount: pending)
            }
            cStart = 0
            cEnd = pending
        }
        chunk.withUnsafeBytes { content.baseAddress!.advanced(by: cEnd).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        cEnd += chunk.count
    }

    /// Checks the trailer the frame reader found at `at`, in the order a reader meets its
    /// fields; `crc` is that of every byte before it.
    private func checkTrailer(_ t: [UInt8], at: UInt64, crc computed: UInt32, bytesAfter: Int) throws(TraceError) {
        guard cStart == cEnd else {
            throw recordError(.truncated, "stream ends inside a record (\(cEnd - cStart) bytes left over)")
        }
        try t.withBytes { (t) throws(TraceError) in
            guard BinaryLayout.get(t, 4, as: UInt32.self) == UInt32(BinaryLayout.trailerPayload) else {
                throw fail(at + 4, .corrupt, "trailer frame size is not \(BinaryLayout.trailerPayload)")
            }
            for i in 0..<8 where t[8 + i] != BinaryLayout.trailerMagic[i] {
                throw fail(at + 8 + UInt64(i), .corrupt, "bad trailer magic")
            }
            let count = BinaryLayout.get(t, 16, as: UInt64.self)
            guard count == recordIndex else {
                throw fail(at + 16, .corrupt, "trailer counts \(count) records, the stream holds \(recordIndex)")
            }
            let stored = BinaryLayout.get(t, 24, as: UInt32.self)
            guard stored == computed else {
                throw fail(at + 24, .corrupt, "CRC-32 mismatch (trailer \(hex(UInt64(stored))), file \(hex(UInt64(computed)))): corrupt")
            }
            guard BinaryLayout.get(t, 28, as: UInt32.self) == 0 else {
                throw fail(at + 28, .corrupt, "reserved trailer bytes are not zero")
            }
        }
        if bytesAfter > 0 {
            throw fail(at + UInt64(BinaryLayout.trailerSize), .corrupt, "\(bytesAfter)+ bytes after the trailer")
        }
    }
}

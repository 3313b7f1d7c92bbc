import Dispatch
import Synchronization
import Zstd

/// What the frame reader hands the record parser, in stream order.
enum FrameEvent {
    /// Decompressed record bytes.
    case content([UInt8])
    /// The trailer frame, whole, at file offset `at`, with the CRC-32 of every byte before it
    /// and how many bytes follow it (0 when it ends the file, as it must).
    case trailer([UInt8], at: UInt64, crc: UInt32, bytesAfter: Int)
    /// The file ends at `at`, where a frame or the trailer should start: the parser, which
    /// knows how many records came before, reports it.
    case endsBetweenFrames(at: UInt64)
    /// A framing, compression or I/O error. Nothing follows.
    case failure(TraceError)
}

/// Reads the frames of a binary trace on a thread of its own: the input, zstd and the CRC-32,
/// so that decompressing the next frame overlaps parsing the records of this one (two cores
/// decode a trace in the time of the slower half, not of both). It runs at most `depth`
/// chunks ahead, stops after the trailer or the first failure, and reports every problem as
/// an event at the point of the stream where it lies, so the parser sees exactly what a
/// sequential reader would, in the same order.
///
/// Between `start()` and `stop()` the input, the decompressor and the CRC belong to the
/// reading thread; only the queue is shared.
final class FrameReader: @unchecked Sendable {
    private let input: ByteInput
    private let dctx: ZstdDecompressor
    private var crc: CRC32
    private var inFrame = false

    /// Chunks decoded ahead at most: with zstd's 128 KiB output, half a MiB.
    private static let depth = 4
    private struct Shared {
        var events: [FrameEvent] = []
        var cancelled = false
    }
    private let shared = Mutex(Shared())
    private let ready = DispatchSemaphore(value: 0)
    /// Starts at 0 and is raised to `depth` in init: libdispatch traps when a semaphore is
    /// freed below the value it was created with, as a reader stopped early leaves it.
    private let room = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var running = false

    /// A reader of the frames after the header; `crc` covers the header.
    init(input: ByteInput, dctx: ZstdDecompressor, crc: CRC32) {
        self.input = input
        self.dctx = dctx
        self.crc = crc
        for _ in 0..<Self.depth { room.signal() }
    }

    func start() {
        running = true
        DispatchQueue(label: "pinreplay.frames").async { [self] in run() }
    }

    /// Stops the reading thread and waits for it: afterwards the input is the caller's again.
    func stop() {
        guard running else { return }
        shared.withLock { $0.cancelled = true }
        room.signal()
        finished.wait()
        running = false
    }

    /// The next event, waiting for it. Not to be called after the last one (the trailer, or a
    /// failure).
    func take() -> FrameEvent {
        ready.wait()
        let event = shared.withLock { $0.events.removeFirst() }
        room.signal()
        return event
    }

    private func run() {
        defer { finished.signal() }
        while true {
            let event: FrameEvent
            do throws(TraceError) {
                guard let e = try step() else { continue }
                event = e
            } catch {
                event = .failure(error)
            }
            room.wait()
            let delivered = shared.withLock { (s) -> Bool in
                guard !s.cancelled else { return false }
                s.events.append(event)
                return true
            }
            guard delivered else { return }
            ready.signal()
            guard case .content = event else { return }
        }
    }

    private func fail(_ at: UInt64, _ code: TraceError.Code, _ message: String, cause: TraceError.Cause? = nil) -> TraceError {
        input.failure(at, code, message, cause: cause)
    }

    /// Moves the stream forward: decompresses more content, or at a frame boundary reads the
    /// next frame's magic or the trailer. Nil when there is nothing to hand over yet.
    private func step() throws(TraceError) -> FrameEvent? {
        if !inFrame {
            guard try input.ensure(4) else {
                if input.available == 0 { return .endsBetweenFrames(at: input.offset) }
                throw fail(input.offset, .truncated, "file ends inside a frame header (truncated)")
            }
            let magic = input.withAvailable { BinaryLayout.get($0, 0, as: UInt32.self) }
            switch magic {
            case BinaryLayout.trailerFrameMagic:
                return try readTrailer()
            case BinaryLayout.zstdFrameMagic:
                inFrame = true
            default:
                throw fail(input.offset, .corrupt, "expected a zstd frame or the trailer, found \(hex(UInt64(magic)))")
            }
        }
        if input.available == 0, try !input.fill() {
            throw fail(input.offset, .truncated, "file ends inside a zstd frame (truncated)")
        }
        let offset = input.offset
        var consumed = 0
        var frameDone = false
        var failure: ZstdError?
        let chunk = [UInt8](unsafeUninitializedCapacity: ZstdDecompressor.recommendedOutputSize) { out, produced in
            do throws(ZstdError) {
                (produced, frameDone) = try input.withAvailable { (raw) throws(ZstdError) in
                    var pos = 0
                    let r = try dctx.decompress(raw, &pos, into: UnsafeMutableRawBufferPointer(out))
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[0..<pos]))
                    consumed = pos
                    return r
                }
            } catch {
                failure = error
                produced = 0
            }
        }
        if let failure {
            throw fail(offset, .corrupt, "corrupt zstd frame: \(failure.name)", cause: .zstd(code: failure.code, name: failure.name))
        }
        input.consume(consumed)
        if frameDone { inFrame = false }
        if consumed == 0 && chunk.isEmpty && !frameDone, try !input.fill() {
            throw fail(input.offset, .truncated, "file ends inside a zstd frame (truncated)")
        }
        return chunk.isEmpty ? nil : .content(chunk)
    }

    private func readTrailer() throws(TraceError) -> FrameEvent {
        let at = input.offset
        guard try input.ensure(BinaryLayout.trailerSize) else {
            throw fail(at, .truncated, "file ends inside the trailer (truncated)")
        }
        let bytes = input.withAvailable { Array($0[0..<BinaryLayout.trailerSize]) }
        input.consume(BinaryLayout.trailerSize)
        let after = try input.ensure(1) ? input.available : 0
        return .trailer(bytes, at: at, crc: crc.value, bytesAfter: after)
    }
}

import CZstd

/// An error libzstd reported, with the function that reported it.
public struct ZstdError: Error, Equatable, Sendable, CustomStringConvertible {
    /// libzstd's error code (`ZSTD_getErrorCode`).
    public let code: Int
    /// The libzstd function that failed.
    public let function: String
    /// libzstd's own words for it, e.g. "Restored data doesn't match checksum".
    public let name: String
    public var description: String { "\(name) (zstd error \(code) in \(function))" }
}

/// The one place libzstd's size_t results are checked.
@inline(__always)
func zstdCall(_ result: Int, where function: String = #function) throws(ZstdError) -> Int {
    if ZSTD_isError(result) != 0 {
        let name = ZSTD_getErrorName(result).map { String(cString: $0) } ?? "unknown error"
        throw ZstdError(code: Int(ZSTD_getErrorCode(result).rawValue), function: function, name: name)
    }
    return result
}

/// A streaming compressor writing frames with the content checksum on.
public final class ZstdCompressor {
    private let cctx: OpaquePointer
    private var scratch = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())

    /// A compressor at `level` (1-19) that writes content checksums.
    public init(level: Int32 = 3) throws(ZstdError) {
        guard let c = ZSTD_createCCtx() else {
            throw ZstdError(code: -1, function: "ZSTD_createCCtx", name: "out of memory")
        }
        cctx = c
        _ = try zstdCall(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level))
        _ = try zstdCall(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1))
    }

    deinit { ZSTD_freeCCtx(cctx) }

    /// Compresses all of `input`, appending compressed bytes to `out`; with `endFrame` the frame
    /// is closed (checksum written) after it.
    public func compress(_ input: UnsafeRawBufferPointer, endFrame: Bool, into out: inout [UInt8]) throws(ZstdError) {
        var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        let mode = endFrame ? ZSTD_e_end : ZSTD_e_continue
        while true {
            var result = 0
            let produced = scratch.withUnsafeMutableBytes { raw in
                var outBuf = ZSTD_outBuffer(dst: raw.baseAddress, size: raw.count, pos: 0)
                result = ZSTD_compressStream2(cctx, &outBuf, &inBuf, mode)
                return outBuf.pos
            }
            let remaining = try zstdCall(result, where: "ZSTD_compressStream2")
            out.append(contentsOf: scratch[0..<produced])
            let inputDone = inBuf.pos == inBuf.size
            if endFrame ? remaining == 0 : inputDone { break }
        }
    }
}

/// A streaming decompressor with a bounded window, so a hostile file cannot ask for gigabytes.
public final class ZstdDecompressor {
    private let dctx: OpaquePointer

    /// - Parameter windowLogMax: the largest window accepted, as a power of two.
    public init(windowLogMax: Int32 = 23) throws(ZstdError) {
        guard let d = ZSTD_createDCtx() else {
            throw ZstdError(code: -1, function: "ZSTD_createDCtx", name: "out of memory")
        }
        dctx = d
        _ = try zstdCall(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, windowLogMax))
    }

    deinit { ZSTD_freeDCtx(dctx) }

    /// Decompresses from `input[inPos...]` into `output`, advancing `inPos`. Returns the bytes
    /// produced and whether a frame has just been completely decoded and flushed (its checksum
    /// verified); decoding stops at the end of a frame.
    public func decompress(
        _ input: UnsafeRawBufferPointer, _ inPos: inout Int, into output: UnsafeMutableRawBufferPointer
    ) throws(ZstdError) -> (produced: Int, frameDone: Bool) {
        var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: inPos)
        var outBuf = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        let hint = try zstdCall(ZSTD_decompressStream(dctx, &outBuf, &inBuf), where: "ZSTD_decompressStream")
        inPos = inBuf.pos
        return (outBuf.pos, hint == 0)
    }

    /// Forgets a partly decoded frame so that the next call starts a new one.
    public func reset() {
        _ = ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only)
    }

    /// The output buffer size libzstd recommends.
    public static var recommendedOutputSize: Int { ZSTD_DStreamOutSize() }
    /// The input buffer size libzstd recommends.
    public static var recommendedInputSize: Int { ZSTD_DStreamInSize() }
}

import Foundation
import Replay
import TestSupport
import Testing
import TraceFormat
import VFIOEngines

/// Every cut and every single-byte corruption of a binary trace is an error naming the file
/// and where, never a crash, a hang or a silently shorter stream.
@Suite struct CorruptInputTests {
    /// A small binary trace holding every statement kind, and its bytes.
    static func sample() throws -> (dir: URL, bytes: [UInt8], events: Int) {
        let dir = Paths.scratch()
        let src = Paths.fixtures.appendingPathComponent("all-statements.txt").path
        let out = dir.appendingPathComponent("sample.vptr").path
        let r = try TraceReader(path: src)
        let w = try TraceWriter(path: out, form: .binary)
        var n = 0
        while let s = try r.next() {
            try w.write(s)
            n += 1
        }
        try w.finish()
        return (dir, [UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), n)
    }

    static func verifyError(_ bytes: [UInt8], in dir: URL) -> TraceError? {
        let path = dir.appendingPathComponent("damaged.vptr").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        do {
            _ = try TraceReader(path: path).verify()
            return nil
        } catch {
            return error
        }
    }

    @Test("Every truncation point is reported with the file and a location")
    func everyCut() throws {
        let (dir, bytes, _) = try Self.sample()
        for cut in 0..<bytes.count {
            let e = Self.verifyError(Array(bytes[0..<cut]), in: dir)
            #expect(e != nil, "cut at \(cut) of \(bytes.count) went unnoticed")
            #expect(e?.file.hasSuffix("damaged.vptr") == true)
            if let e { #expect(e.location != .line(0)) }
            #expect(e?.code == .truncated, "cut at \(cut): \(e.map { "\($0.code)" } ?? "none"): \(e?.message ?? "")")
        }
    }

    @Test("Every single-byte corruption is reported")
    func everyFlip() throws {
        let (dir, bytes, _) = try Self.sample()
        for i in 0..<bytes.count {
            for pattern: UInt8 in [0xFF, 0x01, 0x80] {
                var damaged = bytes
                damaged[i] ^= pattern
                let e = Self.verifyError(damaged, in: dir)
                #expect(e != nil, "byte \(i) ^ \(pattern) went unnoticed")
                // Damage reads as damage (or as a file that ends early), never as a failed read.
                #expect(
                    e.map { [.corrupt, .truncated, .invalid].contains($0.code) } ?? true,
                    "byte \(i) ^ \(pattern): \(e?.code.rawValue ?? "")")
            }
        }
    }

    @Test("Header damage is named as such; the intact file verifies")
    func headerMessages() throws {
        let (dir, bytes, events) = try Self.sample()
        let path = dir.appendingPathComponent("sample.vptr").path
        #expect(try TraceReader(path: path).verify() == events)
        var v = bytes
        v[16] = 2
        #expect(Self.verifyError(v, in: dir)?.description.hasSuffix("byte 16: unsupported format version 2 (this reader knows 1)") == true)
        var m = bytes
        m[0] = 0
        #expect(Self.verifyError(m, in: dir)?.description.hasSuffix("byte 0: not a pinreplay binary trace (bad magic)") == true)
        #expect(Self.verifyError(v, in: dir)?.code == .corrupt)
        let noTrailer = Self.verifyError(Array(bytes.dropLast(32)), in: dir)
        #expect(noTrailer?.code == .truncated)
        #expect(noTrailer?.message.hasSuffix("without its trailer (truncated)") == true)
        let extra = Self.verifyError(bytes + [0], in: dir)
        #expect(extra?.code == .corrupt)
        #expect(extra?.message == "1+ bytes after the trailer")
    }

    @Test("A file that cannot be opened is an io error carrying errno; a world that cannot follow is impossible")
    func codes() throws {
        let missing = try #require(throws: TraceError.self) { try TraceReader(path: "/nonexistent/trace.vptr") }
        #expect(missing.code == .io)
        #expect(missing.cause == .errno(2))
        #expect(missing.description == "/nonexistent/trace.vptr: cannot open: No such file or directory")
        let path = Paths.fixtures.appendingPathComponent("pte-outside.txt").path
        var observer = NoObserver()
        let outside = try #require(throws: TraceError.self) { try Replayer(engines: [V4_16()]).replay(path: path, observer: &observer) }
        #expect(outside.code == .impossible)
        #expect(outside.location == .line(4))
        #expect(outside.cause == nil)
    }
}

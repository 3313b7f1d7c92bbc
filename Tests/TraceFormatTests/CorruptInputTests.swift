import Foundation
import Testing
import TestSupport
import TraceFormat

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
        #expect(Self.verifyError(Array(bytes.dropLast(32)), in: dir)?.message.contains("without its trailer") == true)
        #expect(Self.verifyError(bytes + [0], in: dir)?.message.contains("after the trailer") == true)
    }
}

import Foundation
import Replay
import TestSupport
import Testing
import TraceFormat
import VFIOEngines

/// A replay never acts on a damaged binary trace: its verification pass (framing, checksums,
/// trailer) refuses every cut and every flipped byte before any statement is replayed.
@Suite struct CorruptReplayTests {
    @Test("Every cut and every flipped byte of a binary trace is refused before replay")
    func everyDamage() throws {
        let dir = Paths.scratch()
        let src = Paths.traces.appendingPathComponent("div-mapping-zero-page.txt").path
        let bin = dir.appendingPathComponent("t.vptr").path
        let r = try TraceReader(path: src)
        let w = try TraceWriter(path: bin, form: .binary)
        while let s = try r.next() { try w.write(s) }
        try w.finish()
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bin)))
        let damaged = dir.appendingPathComponent("d.vptr").path
        var variants: [[UInt8]] = (0..<bytes.count).map { Array(bytes[0..<$0]) }
        for i in 0..<bytes.count {
            var b = bytes
            b[i] ^= 0xFF
            variants.append(b)
        }
        for (k, v) in variants.enumerated() {
            _ = FileManager.default.createFile(atPath: damaged, contents: Data(v))
            var observer = NoObserver()
            #expect(throws: TraceError.self, "variant \(k)") {
                try Replayer(engines: [V4_16()]).replay(path: damaged, observer: &observer)
            }
        }
    }
}

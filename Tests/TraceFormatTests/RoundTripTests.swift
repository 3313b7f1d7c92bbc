import Foundation
import TestSupport
import Testing
import TraceFormat

/// Text → binary → text, byte for byte; deterministic binary output; forward compatibility.
@Suite struct RoundTripTests {
    static func read(_ path: String) throws -> [Statement] {
        let r = try TraceReader(path: path)
        var out: [Statement] = []
        while let s = try r.next() { out.append(s) }
        return out
    }

    /// Every statement, or the error that stopped the reading, as text.
    static func readAll(_ path: String, readLimit: Int) -> [String] {
        var out: [String] = []
        do {
            let r = try TraceReader(path: path, readLimit: readLimit)
            while let s = try r.next() { out.append(s.canonicalText) }
        } catch {
            out.append("error: \(error)")
        }
        return out
    }

    @Test("Each decoder fed 1, 7 or 4096 bytes a read gives what it gives reading at once, errors included", arguments: [1, 7, 4096])
    func chunkedInput(readLimit: Int) throws {
        let dir = Paths.scratch()
        var paths = Paths.goldenTraces().map(\.path) + Self.allTextTraces
        // A binary trace cut in its middle, and a text one: the same error at any chunk size.
        let whole = try Data(contentsOf: Paths.traces.appendingPathComponent("nic-sriov-4vf.vptr"))
        let cut = dir.appendingPathComponent("cut.vptr")
        try whole.prefix(whole.count / 2).write(to: cut)
        paths.append(cut.path)
        let text = try Data(contentsOf: Paths.fixtures.appendingPathComponent("all-statements.txt"))
        let cutText = dir.appendingPathComponent("cut.txt")
        try (text.prefix(text.count / 2) + Data("\nmap 0x0 junk\n".utf8)).write(to: cutText)
        paths.append(cutText.path)
        for path in paths {
            let once = Self.readAll(path, readLimit: .max)
            #expect(!once.isEmpty)
            #expect(Self.readAll(path, readLimit: readLimit) == once, "\(path) read \(readLimit) bytes at a time")
        }
        #expect(Self.readAll(cut.path, readLimit: .max).last?.hasPrefix("error: ") == true)
        #expect(Self.readAll(cutText.path, readLimit: .max).last?.hasPrefix("error: ") == true)
    }

    @Test("A binary reader stopped or rewound midway, with its frame thread ahead, reads the same statements again")
    func stopAndRewindMidway() throws {
        // 2 MiB of records: far more than the frame thread may decode ahead (four chunks).
        let path = Paths.scratch().appendingPathComponent("many.vptr").path
        let all: [Statement] = (0..<UInt64(100_000)).flatMap { i -> [Statement] in
            let iova = (i &* 0x9E37_79B9) & 0xff_ffff_f000
            return [
                .map(iova: iova, vaddr: 0x7f00_0000_0000 + iova, size: 0x1000 << (i % 5), access: .write), .unmap(iova: iova, size: 0x1000),
            ]
        }
        try Self.write(all, to: path, form: .binary)
        #expect(try Self.read(path) == all)
        // Dropped after one statement: the frame thread is stopped while it waits for room.
        for _ in 0..<20 {
            let r = try TraceReader(path: path)
            #expect(try r.next() == all[0])
        }
        // Rewound at several points, then read to the end: the same statements, in order.
        let r = try TraceReader(path: path)
        for stop in [1, 30_000, 199_999, all.count] {
            var head: [Statement] = []
            for _ in 0..<stop { if let s = try r.next() { head.append(s) } }
            #expect(head == Array(all[..<stop]))
            try r.rewind()
            #expect(r.eventCount == 0)
        }
        var again: [Statement] = []
        while let s = try r.next() { again.append(s) }
        #expect(again == all)
        #expect(try r.next() == nil)
    }

    static func write(_ statements: [Statement], to path: String, form: TraceForm) throws {
        let w = try TraceWriter(path: path, form: form)
        for s in statements { try w.write(s) }
        try w.finish()
    }

    static func canonical(_ statements: [Statement]) -> String {
        ([textHeader] + statements.map(\.canonicalText)).joined(separator: "\n") + "\n"
    }

    static var allTextTraces: [String] {
        (Paths.textTraces(under: Paths.fixtures) + Paths.textTraces(under: Paths.traces)).map(\.path)
    }

    @Test("The canonical print of every statement kind is exactly as specified")
    func canonicalPrint() throws {
        let statements = try Self.read(Paths.fixtures.appendingPathComponent("all-statements.txt").path)
        let expected = try String(contentsOf: Paths.fixtures.appendingPathComponent("all-statements.canonical.txt"), encoding: .utf8)
        #expect(Self.canonical(statements) == expected)
        #expect(statements.count == 38)
        // Every statement kind is in the fixture, and in the list `stat` prints from.
        #expect(Set(statements.map(\.keyword)) == Set(Statement.keywords))
    }

    @Test("text → binary → text is byte-identical to the canonical print", arguments: allTextTraces)
    func textBinaryText(path: String) throws {
        let dir = Paths.scratch()
        let statements = try Self.read(path)
        let bin = dir.appendingPathComponent("t.vptr").path
        let txt = dir.appendingPathComponent("t.txt").path
        try Self.write(statements, to: bin, form: .binary)
        #expect(try TraceReader(path: bin).form == .binary)
        let back = try Self.read(bin)
        #expect(back == statements)
        try Self.write(back, to: txt, form: .text)
        #expect(try String(contentsOfFile: txt, encoding: .utf8) == Self.canonical(statements))
    }

    @Test("Binary output is deterministic: same statements, same bytes")
    func deterministicBinary() throws {
        let dir = Paths.scratch()
        let statements = try Self.read(Paths.fixtures.appendingPathComponent("all-statements.txt").path)
        let a = dir.appendingPathComponent("a.vptr").path
        let b = dir.appendingPathComponent("b.vptr").path
        try Self.write(statements, to: a, form: .binary)
        try Self.write(statements, to: b, form: .binary)
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)))
    }

    @Test("A reader skips a record type it does not know and replays the rest")
    func unknownRecordSkipped() throws {
        let dir = Paths.scratch()
        let path = dir.appendingPathComponent("future.vptr").path
        let w = try TraceWriter(path: path, form: .binary)
        try w.write(.mark("before"))
        w.writeUnknownRecord(type: 4000, payload: [1, 2, 3, 4, 5])
        try w.write(.map(iova: 0x1000, vaddr: 0x40_0000, size: 0x2000, access: .read))
        try w.finish()
        let r = try TraceReader(path: path)
        #expect(try r.verify() == 2)
        #expect(try Self.read(path) == [.mark("before"), .map(iova: 0x1000, vaddr: 0x40_0000, size: 0x2000, access: .read)])
    }

    @Test("A large trace streams through a bounded buffer and spans several zstd frames")
    func largeTraceFrames() throws {
        let dir = Paths.scratch()
        let path = dir.appendingPathComponent("big.vptr").path
        let w = try TraceWriter(path: path, form: .binary)
        // Random-looking addresses defeat the delta coding, so the content passes 1 MiB.
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        var expected: [Statement] = []
        for i in 0..<200_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let s = Statement.map(iova: (x >> 12) << 12, vaddr: UInt64(i) << 12, size: 0x1000, access: .read)
            expected.append(s)
            try w.write(s)
        }
        try w.finish()
        #expect(try Self.read(path) == expected)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let frameMagic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]
        let frames = (0..<bytes.count - 3).filter { Array(bytes[$0..<$0 + 4]) == frameMagic }.count
        #expect(frames >= 3)
    }
}

/// Marks and VMA names carry any text through both forms: the text form escapes what it
/// cannot write plainly (SPEC: docs/FORMAT.md, "Text in marks and names").
@Suite struct TextEscapeTests {
    static let awkward = [
        "ends in a blank ", " starts with one", "CR LF\r\ninside", "a # hash", "back\\slash", "tab\there",
        "\u{7f}del", "é precomposed and e\u{301} combining", "#\u{301} hash then accent", "\\x41 looks like an escape",
        "  ", "nul\u{0}byte",
    ]

    @Test("Awkward marks and names survive binary → text → binary and text → binary → text", arguments: awkward)
    func roundTrip(text: String) throws {
        let dir = Paths.scratch("escape-\(abs(text.hashValue))")
        let statements: [Statement] = [
            .mark(TraceText(text)), .vma(VMASpec(start: 0x10000, end: 0x20000, name: TraceText(text))),
            .map(iova: 0, vaddr: 0x10000, size: 4096, access: .read),
        ]
        let bin = dir.appendingPathComponent("t.vptr").path
        let txt = dir.appendingPathComponent("t.txt").path
        let bin2 = dir.appendingPathComponent("t2.vptr").path
        try RoundTripTests.write(statements, to: bin, form: .binary)
        try RoundTripTests.write(try RoundTripTests.read(bin), to: txt, form: .text)
        let fromText = try RoundTripTests.read(txt)
        #expect(fromText == statements)
        // Byte for byte: Swift's String == would call canonically equivalent texts equal.
        guard case .mark(let m) = fromText[0], case .vma(let v) = fromText[1] else {
            Issue.record("statements changed kind")
            return
        }
        #expect(Array(m.string.utf8) == Array(text.utf8))
        #expect(Array(v.name.string.utf8) == Array(text.utf8))
        // One statement per line: the text has exactly header + 3 lines.
        let lines = try String(contentsOfFile: txt, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 5 && lines[4].isEmpty)
        try RoundTripTests.write(fromText, to: bin2, form: .binary)
        #expect(try Data(contentsOf: URL(fileURLWithPath: bin)) == Data(contentsOf: URL(fileURLWithPath: bin2)))
    }

    @Test("The escapes as written")
    func written() {
        #expect(escapeTraceText("plain text") == "plain text")
        #expect(escapeTraceText("a b ") == "a b\\x20")
        #expect(escapeTraceText(" a") == "\\x20a")
        #expect(escapeTraceText("x\r\ny") == "x\\x0d\\x0ay")
        #expect(escapeTraceText("1#2\\3") == "1\\x232\\\\3")
    }

    @Test("A bad escape or escaped invalid UTF-8 is an error naming the line")
    func badEscapes() {
        #expect(TextParseTests.error("mark a\\qb") == "t.txt:2: bad escape at column 2: write \\\\ for a backslash, \\xHH for a byte")
        #expect(TextParseTests.error("mark \\xff") == "t.txt:2: escaped text is not valid UTF-8")
        #expect(TextParseTests.error("mark a\\x4") == "t.txt:2: bad escape at column 2: write \\\\ for a backslash, \\xHH for a byte")
    }

    @Test("'#' is a comment whatever follows it; a line past 1 MiB is refused")
    func bytesNotCharacters() throws {
        #expect(try TextParseTests.parse("vptr-text 1\nmark a #\u{301} comment") == [.mark("a")])
        let long = "mark " + String(repeating: "x", count: 1 << 20)
        #expect(TextParseTests.error(long) == "t.txt:2: line longer than 1048576 bytes")
    }
}

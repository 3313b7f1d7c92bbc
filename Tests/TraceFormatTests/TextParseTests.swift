import Testing
import TraceFormat

/// Text-form errors name the file and line and say what is wrong.
@Suite struct TextParseTests {
    static func parse(_ text: String) throws(TraceError) -> [Statement] {
        var p = TextParser(file: "t.txt")
        var out: [Statement] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let s = try p.parse(line: line) { out.append(s) }
        }
        try p.finish()
        return out
    }

    static func error(_ body: String) -> String {
        do {
            _ = try parse("vptr-text 1\n" + body)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test(
        "Malformed statements",
        arguments: [
            ("mapp 0 0 0 r", "t.txt:2: unknown keyword 'mapp'"),
            ("map 0 0 4K", "t.txt:2: missing field: 'map' takes 5 fields, got 4"),
            ("unmap 0 4K 1", "t.txt:2: extra field: 'unmap' takes 3 fields, got 4"),
            ("unmap 0x 4K", "t.txt:2: bad number '0x'"),
            ("unmap 12ab 4K", "t.txt:2: bad number '12ab'"),
            ("unmap 0x10000000000000000 4K", "t.txt:2: number '0x10000000000000000' is past 64 bits"),
            ("unmap 0 16777216T", "t.txt:2: number '16777216T' is past 64 bits"),
            ("vma 0x2000 0x1000 rw-", "t.txt:2: END 0x1000 is not above START 0x2000"),
            ("vma 0x1000 0x1800 rw-", "t.txt:2: range 0x1000-0x1800 is not page aligned"),
            ("pte 0x1100 1 0x5", "t.txt:2: VADDR 0x1100 is not page aligned"),
            ("munmap 0x1000 0x1000", "t.txt:2: END 0x1000 is not above START 0x1000"),
            ("zero_page 0x10", "t.txt:2: zero_page 0x10 does not lie in a reserved range"),
            ("page_shift 16", "t.txt:2: page_shift must be 12 in version 1, not 16"),
            ("vma 0x200000 0x600000 rw- hugetlb=3M", "t.txt:2: hugetlb=0x300000 is not a power of two of at least 4 KiB"),
            ("vma 0x100000 0x500000 rw- hugetlb=2M", "t.txt:2: VMA 0x100000-0x500000 is not aligned to its huge page size 0x200000"),
            ("vma 0x1000 0x2000 rwz", "t.txt:2: PERMS must be three characters r/-, w/-, x/-, not 'rwz'"),
            ("vma 0x1000 0x2000 rw- io io", "t.txt:2: VMA flag 'io' given twice"),
            ("vma 0x1000 0x2000 rw- huge", "t.txt:2: unknown VMA flag 'huge'"),
            ("map 0 0 4K x", "t.txt:2: access must be r, w, rw or -, not 'x'"),
            ("pin 0 1 -", "t.txt:2: access must be r, w or rw, not '-'"),
            ("pte 0x1000 1 0x5 rx", "t.txt:2: unknown pte flag 'rx' (ro, then leaf=SIZE)"),
            ("pfns ram 0 0", "t.txt:2: COUNT must be at least 1"),
            ("pfns dram 0 1", "t.txt:2: pfns class must be ram, reserved or mmio, not 'dram'"),
            ("cap_ipc_lock maybe", "t.txt:2: expected yes or no, not 'maybe'"),
            ("vptr-text 1", "t.txt:2: a second 'vptr-text' header"),
            ("mark", "t.txt:2: mark needs a TEXT"),
        ])
    func malformed(line: String, message: String) {
        #expect(Self.error(line) == message)
    }

    @Test("Header: missing, wrong version, or not first")
    func header() {
        #expect(throws: TraceError(file: "t.txt", .line(1), .syntax, "unsupported text trace version '2' (this reader knows 1)")) {
            try Self.parse("vptr-text 2\n")
        }
        #expect(throws: TraceError(file: "t.txt", .line(2), .syntax, "first line must be 'vptr-text 1', not 'map 0 0 4K r'")) {
            try Self.parse("# comment\nmap 0 0 4K r\n")
        }
        #expect(throws: TraceError(file: "t.txt", .file, .syntax, "no 'vptr-text 1' header: empty or not a text trace")) {
            try Self.parse("# nothing\n\n")
        }
    }

    @Test("Numbers: decimal, hex, binary suffixes")
    func numbers() throws {
        let s = try Self.parse("vptr-text 1\nmap 0x10 16 4K rw\nunmap 0XaB 1T\npool 2G 0x1K")
        #expect(
            s == [
                .map(iova: 0x10, vaddr: 16, size: 4096, access: [.read, .write]),
                .unmap(iova: 0xab, size: 1 << 40),
                .pool(start: 2 << 30, count: 1024),
            ])
    }

    @Test("Comments anywhere, name= and mark run to the end of the line")
    func commentsAndText() throws {
        let s = try Self.parse("vptr-text 1 # header\nvma 0x1000 0x2000 r-- name=a b  c # not part of it\nmark phase 1: firmware#x")
        #expect(s == [.vma(VMASpec(start: 0x1000, end: 0x2000, write: false, name: "a b  c")), .mark("phase 1: firmware")])
    }
}

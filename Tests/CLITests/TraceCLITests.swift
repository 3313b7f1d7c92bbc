import Foundation
import TestSupport
import Testing

/// `dump`, `convert`, `stat`, `verify` end to end, files and standard input.
@Suite struct TraceCLITests {
    @Test("convert text → binary → text through files and stdin/stdout; dump prints canonical text")
    func convertAndDump() throws {
        let dir = Paths.scratch()
        let bin = dir.appendingPathComponent("t.vptr").path
        let back = dir.appendingPathComponent("t.txt").path
        #expect(try CLI.run(["convert", "Tests/Fixtures/all-statements.txt", bin]).status == 0)
        #expect(try CLI.run(["convert", bin, back]).status == 0)
        let canonical = try String(contentsOf: Paths.fixtures.appendingPathComponent("all-statements.canonical.txt"), encoding: .utf8)
        #expect(try String(contentsOfFile: back, encoding: .utf8) == canonical)
        let dumped = try CLI.run(["dump", "-"], stdin: try Data(contentsOf: URL(fileURLWithPath: bin)))
        #expect(dumped.status == 0 && dumped.stdout == canonical)
        // No extension on OUT: the other form. Standard output as OUT.
        let toStdout = try CLI.run(["convert", "-", "-"], stdin: Data(canonical.utf8))
        #expect(toStdout.status == 0)
        #expect(toStdout.stdout.utf8.prefix(4).elementsEqual([0x50, 0x2A, 0x4D, 0x18]))
    }

    @Test("verify counts records; a corrupt file exits 2 and leaves no output file behind")
    func verifyAndAtomicity() throws {
        let dir = Paths.scratch()
        let bin = dir.appendingPathComponent("t.vptr").path
        #expect(try CLI.run(["convert", "Tests/Fixtures/all-statements.txt", bin]).status == 0)
        let ok = try CLI.run(["verify", bin])
        #expect(ok.stdout == "\(bin): ok, binary, 38 records\n")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: bin))
        bytes[40] ^= 0xFF
        let bad = dir.appendingPathComponent("bad.vptr").path
        try bytes.write(to: URL(fileURLWithPath: bad))
        let r = try CLI.run(["verify", bad])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("pinreplay: \(bad): byte "))
        let out = dir.appendingPathComponent("out.txt").path
        #expect(try CLI.run(["convert", bad, out]).status == 2)
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["bad.vptr", "t.vptr"])
    }

    @Test("stat counts statements, mapped bytes by access and VMAs by kind")
    func stat() throws {
        let r = try CLI.run(["stat", "Tests/Fixtures/all-statements.txt"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Tests/Fixtures/all-statements.txt: text trace, 38 events\n"))
        #expect(r.stdout.contains("  map                4\n"))
        #expect(r.stdout.contains("  unmap_all          2\n"))
        #expect(r.stdout.contains("  rw                 1073741824 (1 GiB)\n"))
        #expect(r.stdout.contains("  w                  17179869184 (16 GiB)\n"))
        #expect(r.stdout.contains("  pfnmap             2 (16.0 GiB)\n"))
        #expect(r.stdout.contains("  hugetlb            1 (1 GiB)\n"))
        #expect(r.stdout.contains("  thp                2\n"))
        #expect(r.stdout.contains("  dma_entry_limit    1\n"))
        #expect(r.stdout.contains("pages touched: 1 read, 4 write; pte pages set: 1026\n"))
    }
}

import Foundation
import Testing
import TestSupport

/// `pinreplay record` end to end on saved inputs.
@Suite struct RecordCLITests {
    @Test("Saved maps, flat view and gpa2hva become a replayable trace; assumptions printed once")
    func savedQEMU() throws {
        let out = Paths.scratch().appendingPathComponent("q.txt").path
        let r = try CLI.run([
            "record", "--maps", "Tests/Fixtures/qemu/maps-q35-256m.txt", "--mtree", "Tests/Fixtures/qemu/mtree-q35-256m.txt",
            "--hva", "Tests/Fixtures/qemu/gpa2hva-q35-256m.txt", "-o", out,
        ])
        #expect(r.status == 0)
        #expect(r.stderr.components(separatedBy: "assumed: a kernel image").count == 2)
        let replay = try CLI.run(["replay", out])
        // The ROM sections QEMU never wrote are the zero page: v4.17-rc1's runs diverge there.
        #expect(replay.status == 1)
        #expect(replay.stdout.contains("mapping (iova→pfn differs): 3 requests"))
    }

    @Test("A maps line that does not parse exits 2 naming the file and line")
    func badMaps() throws {
        let dir = Paths.scratch()
        let maps = dir.appendingPathComponent("maps").path
        try "7f0000000000-7f0000001000 r--p 0 00:00 0\nbogus\n".write(toFile: maps, atomically: true, encoding: .utf8)
        let r = try CLI.run(["record", "--maps", maps, "-o", dir.appendingPathComponent("x.vptr").path])
        #expect(r.status == 2)
        #expect(r.stderr == "pinreplay: \(maps):2: not a maps line (fewer than five fields): 'bogus'\n")
    }
}

import Foundation
import TestSupport
import Testing
import VFIOEngines

/// `pinreplay replay` end to end through the built executable.
@Suite struct ReplayCLITests {
    static func fixture(_ name: String) -> String { "Tests/Fixtures/" + name }

    static func expected(_ name: String) throws -> String {
        try String(contentsOf: Paths.fixtures.appendingPathComponent(name), encoding: .utf8)
    }

    @Test(
        "The later worked cases give exactly their jsonl through --engines later",
        arguments: ["later-03-ro-unshare", "later-07-bar-leaves", "later-11-agree-ram", "later-12-fixed-equivalence"])
    func laterExamplesJSONL(name: String) throws {
        let r = try CLI.run(["replay", "--engines", "later", "--format", "jsonl", Self.fixture("examples/later/\(name).txt")])
        #expect(r.stderr == "")
        #expect(r.stdout == (try Self.expected("examples/later/\(name).jsonl")))
    }

    @Test("The worked examples give exactly their jsonl through all three engines", arguments: ["ram-then-reserved", "zero-page-ro-map"])
    func examplesJSONL(name: String) throws {
        let r = try CLI.run(["replay", "--engines", "v4.16,rfc-v1,v4.17-rc1", "--format", "jsonl", Self.fixture("examples/\(name).txt")])
        #expect(r.stdout == (try Self.expected("examples/\(name).jsonl")))
        #expect(r.status == 1)
        #expect(r.stderr == "")
    }

    @Test("A clean trace: exact jsonl, engines by canonical name, exit 0")
    func cleanJSONL() throws {
        let r = try CLI.run(["replay", "--engines", "old,patched", "--format", "jsonl", Self.fixture("clean-small.txt")])
        #expect(r.stdout == (try Self.expected("clean-small.jsonl")))
        #expect(r.status == 0)
    }

    @Test("The JSON report of a trace with a violation")
    func jsonWithViolation() throws {
        let r = try CLI.run(["replay", "--format", "json", Self.fixture("examples/ram-then-reserved.txt")])
        #expect(r.status == 1)
        #expect(
            r.stdout.hasPrefix(
                "{\"schema\":2,\"traces\":[\n{\"trace\":\"Tests/Fixtures/examples/ram-then-reserved.txt\",\"events\":7,\"requests\":2,\"engines\":[\"v4.16\",\"v4.17-rc1\"],\n\"summary\":{\n\"v4.16\":{\"vaddr_get_pfn\":3,"
            ))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let trace = try #require((doc["traces"] as? [[String: Any]])?.first)
        let summary = try #require(trace["summary"] as? [String: [String: Any]])
        #expect(summary["v4.16"]?["locked_vm_counter"] as? String == "mm->locked_vm")
        #expect(summary["v4.16"]?["pinned_vm_peak"] as? Int == 0)
        #expect(summary["v4.16"]?["est_kernel_ns"] as? Int == 2866)
        #expect(summary["v4.17-rc1"]?["est_kernel_ns"] as? Int == 1794)
        #expect(summary["v4.16"]?["locked_vm_final"] as? Int == 0)
        #expect(summary["v4.17-rc1"]?["locked_vm_final"] as? Int == 1)
        #expect(summary["v4.17-rc1"]?["chunks_mapped"] as? Int == 1)
        let divergences = try #require(trace["divergences"] as? [[String: Any]])
        // The map charges differently; the unmap then uncharges alike (one page each), so only
        // the map diverges, and what it left behind shows as the leak.
        #expect(divergences.map { $0["event"] as? Int } == [6])
        #expect(divergences.map { $0["kind"] as? String } == ["accounting"])
        #expect(divergences[0]["detail"] as? String == "locked_vm v4.16 +1, v4.17-rc1 +2; also chunk-boundaries")
        let violations = try #require(trace["violations"] as? [[String: Any]])
        #expect(violations.count == 1)
        #expect(violations[0]["engine"] as? String == "v4.17-rc1")
        #expect(violations[0]["event"] as? Int == 8)
        #expect(violations[0]["kind"] as? String == "leak")
        #expect(violations[0]["detail"] as? String == "locked_vm is 1 pages after teardown, expected 0")
    }

    @Test("Exit 2 with one line naming file and line for a malformed trace")
    func badTrace() throws {
        let r = try CLI.run(["replay", Self.fixture("bad/keyword.txt")])
        #expect(r.status == 2)
        #expect(r.stdout == "")
        #expect(r.stderr == "pinreplay: Tests/Fixtures/bad/keyword.txt:3: unknown keyword 'mapp'\n")
    }

    @Test("Exit 2 for a trace the world cannot follow, naming the event")
    func inconsistentTrace() throws {
        let r = try CLI.run(["replay", Self.fixture("pte-outside.txt")])
        #expect(r.status == 2)
        #expect(
            r.stderr
                == "pinreplay: Tests/Fixtures/pte-outside.txt:4: event 2 (pte) cannot happen: pte range 0x500000+1 pages is not inside a VMA\n"
        )
    }

    @Test("A touch the guest would take SIGSEGV for does nothing, on every engine: the trace is accepted")
    func touchOutsideAccepted() throws {
        let r = try CLI.run(["replay", "--engines", "all", "--format", "jsonl", Self.fixture("touch-outside.txt")])
        #expect(r.status == 0)
        #expect(r.stderr == "")
        // The map's one page faulted fresh from an empty pool: -ENOMEM everywhere.
        #expect(r.stdout.split(separator: "\n").allSatisfy { $0.hasSuffix("\"op\":\"map\",\"ret\":-12,\"chunks\":[],\"locked_vm\":0}") })
        #expect(r.stdout.split(separator: "\n").count == Engines.all.count)
    }

    @Test("An unknown engine exits 2 and lists the engines")
    func unknownEngine() throws {
        let r = try CLI.run(["replay", "--engines", "old,v9.9", Self.fixture("clean-small.txt")])
        #expect(r.status == 2)
        #expect(
            r.stderr
                == "pinreplay: unknown engine 'v9.9'; engines: v4.16 (old), rfc-v1, v4.17-rc1 (patched), fixed, v5.15, v6.1, v6.12, v6.15, v6.18, iommufd (iommufd-native), iommufd-compat; groups: iommufd, later, all; or a C file (./my-patch.c, NAME=PATH)\n"
        )
    }

    @Test("Bad flags and missing files exit 2 with one line")
    func badUsage() throws {
        let flag = try CLI.run(["replay", "--format", "yaml", Self.fixture("clean-small.txt")])
        #expect(flag.status == 2)
        #expect(
            flag.stderr
                == "pinreplay: The value 'yaml' is invalid for '--format <format>'. Please provide one of 'text', 'json', 'jsonl' or 'html'. (see 'pinreplay help')\n"
        )
        let unknown = try CLI.run(["replay", "--frobnicate", Self.fixture("clean-small.txt")])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.split(separator: "\n").count == 1)
        let missing = try CLI.run(["replay", "no/such/trace.txt"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "pinreplay: no/such/trace.txt: cannot open: No such file or directory\n")
    }

    @Test("Output is identical with --jobs 1 and --jobs 4, in trace order", arguments: ["text", "json", "jsonl"])
    func jobsDoNotMatter(format: String) throws {
        let traces = ["examples/zero-page-ro-map.txt", "clean-small.txt", "examples/ram-then-reserved.txt", "two-rom-maps.txt"]
            .map(Self.fixture)
        let one = try CLI.run(["replay", "--engines", "all", "--format", format, "--jobs", "1"] + traces)
        let four = try CLI.run(["replay", "--engines", "all", "--format", format, "--jobs", "4"] + traces)
        #expect(one.status == 1 && four.status == 1)
        #expect(one.stdout == four.stdout)
        #expect(!one.stdout.isEmpty)
    }

    @Test("The text report groups divergences by kind and lists violations per engine")
    func textReport() throws {
        let r = try CLI.run(["replay", "--cost", Self.fixture("examples/zero-page-ro-map.txt")])
        #expect(r.status == 1)
        #expect(r.stdout.contains("  mapping (iova→pfn differs): 1 request\n    event 5: map 0x0 0x400000 0x4000 r\n"))
        #expect(r.stdout.contains("      at iova 0x1000: v4.16 maps pfn 0x1000, v4.17-rc1 maps pfn 0x1001; also chunk-boundaries\n"))
        #expect(
            r.stdout.contains(
                "    foreign-pfn: 1\n      event 5: iova 0x1000 vaddr 0x401000 maps pfn 0x1001, page tables hold nothing (3 foreign pages in this chunk)\n"
            ))
        #expect(r.stdout.contains("not a measurement"))
        #expect(r.stdout.contains("cost model breakdown (estimate"))
        #expect(r.stdout.hasSuffix("result: found 2 divergences, 4 invariant violations\n"))
    }

    @Test("--max-examples caps the examples shown per group")
    func maxExamples() throws {
        let r = try CLI.run(["replay", "--max-examples", "1", Self.fixture("two-rom-maps.txt")])
        #expect(r.status == 1)
        #expect(r.stdout.contains("  mapping (iova→pfn differs): 2 requests, first 1:\n    event 6: map 0xc0000 0x400000 0x4000 r\n"))
        #expect(!r.stdout.contains("event 7: map"))
        #expect(r.stdout.contains("    foreign-pfn: 2, first 1:\n      event 6: iova 0xc1000"))
    }
}

/// A request asking for more pages than the budget is refused before it runs.
@Suite struct PageBudgetTests {
    @Test("A 2^63-byte pfnmap map is refused with one line; --max-pages decides")
    func budget() throws {
        let path = Paths.scratch().appendingPathComponent("big.txt").path
        try """
        vptr-text 1
        vma 0x7f0000000000 0x7f0040000000 rw- io pfnmap linear pgoff=0x100
        map 0x0 0x7f0000000000 0x8000000000000000 rw
        map 0x0 0x7f0000000000 0x20000 rw

        """.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try CLI.run(["replay", "--engines", "old", path])
        #expect(r.status == 2)
        #expect(r.stdout == "")
        #expect(
            r.stderr
                == "pinreplay: \(path):3: event 2 (map) asks for 2251799813685248 pages, over the budget of 4294967296 (16 TiB) per statement: --max-pages raises it\n"
        )
        let small = path.replacingOccurrences(of: "big", with: "small")
        try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
            of: "map 0x0 0x7f0000000000 0x8000000000000000 rw\n", with: ""
        )
        .write(toFile: small, atomically: true, encoding: .utf8)
        let tight = try CLI.run(["replay", "--engines", "old", "--max-pages", "16", small])
        #expect(tight.status == 2)
        #expect(
            tight.stderr.hasSuffix("event 2 (map) asks for 32 pages, over the budget of 16 (64 KiB) per statement: --max-pages raises it\n")
        )
        #expect(try CLI.run(["replay", "--engines", "old", "--max-pages", "32", small]).status == 0)
    }
}

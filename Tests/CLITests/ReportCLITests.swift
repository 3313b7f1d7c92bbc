import Foundation
import TestSupport
import Testing

/// What a reviewer reads first: the first findings, divergences folded under the state
/// difference they follow, shared failures, cost per request, several traces, the schema.
@Suite struct ReportCLITests {
    static let cause = "Tests/Fixtures/state-cause.txt"

    @Test("The text report opens with the first findings and folds what follows a state difference under it")
    func firstCause() throws {
        let r = try CLI.run(["replay", Self.cause])
        #expect(r.status == 1)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            Array(lines.prefix(6)) == [
                "== Tests/Fixtures/state-cause.txt (text): 11 events, 3 requests",
                "first divergence: event 8, mapping: map 0x0 0x400000 0x4000 r",
                "    at iova 0x1000: v4.16 maps pfn 0x1000, v4.17-rc1 maps pfn 0x1001; also chunk-boundaries",
                "first violation: event 8, v4.17-rc1: foreign-pfn: iova 0x1000 vaddr 0x401000 maps pfn 0x1001, page tables hold nothing (3 foreign pages in this chunk)",
                "state first differs after event 9: v4.17-rc1's locked_vm differs by -3 and its ram page references by -3 from v4.16's",
                "",
            ])
        #expect(
            r.stdout.contains(
                """
                  since event 9: v4.17-rc1's locked_vm differs by -3 and its ram page references by -3 from v4.16's; 1 request follows
                    return code: 1 request
                      event 11: map 0x100000 0x400000 0x8000 rw
                        v4.16      ret 0, 1 chunk (8 pages) first [0x100000, 0x2000, 8], locked_vm 8  [est. 1.5 µs]
                        v4.17-rc1  ret -ENOMEM, 0 chunks (0 pages), locked_vm -3  [est. 72 ns]

                """))
        #expect(r.stdout.hasSuffix("result: found 3 divergences, 4 invariant violations\n"))
    }

    @Test("JSON: the follow-on divergence names its cause; cost per request per engine")
    func jsonCauseAndCost() throws {
        let r = try CLI.run(["replay", "--format", "json", Self.cause])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["schema"] as? Int == 2)
        let trace = try #require((doc["traces"] as? [[String: Any]])?.first)
        let divergences = try #require(trace["divergences"] as? [[String: Any]])
        #expect(divergences.map { $0["event"] as? Int } == [8, 9, 11])
        #expect(divergences.map { $0["since"] as? Int } == [nil, nil, 9])
        let outcomes = try #require(divergences[2]["outcomes"] as? [String: [String: Any]])
        #expect(outcomes["v4.16"]?["est_ns"] as? Int == 1465)
        #expect(outcomes["v4.17-rc1"]?["est_ns"] as? Int == 72)
        let costliest = try #require(trace["costliest"] as? [[String: Any]])
        #expect(costliest.map { $0["event"] as? Int } == [8, 9, 11])
        #expect(costliest[0]["est_ns"] as? [Int] == [6416, 1590])
        let differences = try #require(trace["state_differences"] as? [[String: Any]])
        #expect(differences.count == 1)
        #expect(differences[0]["event"] as? Int == 9)
        #expect(differences[0]["locked_vm"] as? [Int] == [0, -3])
    }

    @Test("A request failing alike on every engine gets its own section; the trace still reads clean, exit 0")
    func sharedFailure() throws {
        let r = try CLI.run(["replay", "Tests/Fixtures/shared-enomem.txt"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("requests failing alike on every engine: 1\n  event 5: map 0x0 0x400000 0x4000 rw → -ENOMEM\n"))
        #expect(r.stdout.hasSuffix("result: clean: the engines agree and no invariant is broken (1 request failing on every engine)\n"))
        let one = try CLI.run(["replay", "--engines", "old", "Tests/Fixtures/shared-enomem.txt"])
        #expect(one.stdout.contains("failed requests: 1\n"))
        #expect(one.stdout.hasSuffix("result: clean: no invariant is broken (1 request failing on the engine)\n"))
    }

    @Test("One engine never 'diverges': the headline names what was found")
    func oneEngineHeadline() throws {
        let r = try CLI.run(["replay", "--engines", "patched", "Tests/Fixtures/examples/zero-page-ro-map.txt"])
        #expect(r.status == 1)
        #expect(r.stdout.hasSuffix("result: found 4 invariant violations\n"))
        #expect(!r.stdout.contains("DIVERGED") && !r.stdout.contains("divergences: 0"))
    }

    @Test("jsonl over several traces: every line opens with its trace")
    func multiTraceJSONL() throws {
        let a = "Tests/Fixtures/clean-small.txt"
        let r = try CLI.run(["replay", "--engines", "old,patched", "--format", "jsonl", a, Self.cause])
        let single = try CLI.run(["replay", "--engines", "old,patched", "--format", "jsonl", a])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let firstTrace = single.stdout.split(separator: "\n").map { "{\"trace\":\"\(a)\"," + $0.dropFirst() }
        #expect(Array(lines.prefix(firstTrace.count)) == firstTrace)
        #expect(lines.dropFirst(firstTrace.count).allSatisfy { $0.hasPrefix("{\"trace\":\"\(Self.cause)\",\"event\":") })
        #expect(lines.count == firstTrace.count + 6)
    }

    @Test("A bad trace among several is reported and the rest still replay; exit 2")
    func badTraceAmongSeveral() throws {
        let r = try CLI.run([
            "replay", "--summary", "Tests/Fixtures/clean-small.txt", "/nonexistent.txt", "Tests/Fixtures/shared-enomem.txt",
        ])
        #expect(r.status == 2)
        #expect(r.stderr == "pinreplay: /nonexistent.txt: cannot open: No such file or directory\n")
        #expect(r.stdout.contains("Tests/Fixtures/clean-small.txt") && r.stdout.contains("Tests/Fixtures/shared-enomem.txt"))
    }

    @Test("--summary: one row per trace, as text and as json")
    func summary() throws {
        let r = try CLI.run(["replay", "--summary", Self.cause, "Tests/Fixtures/shared-enomem.txt"])
        #expect(
            r.stdout == """
                trace                             events  requests  divergences                             violations                                   est. v4.16  est. v4.17-rc1
                Tests/Fixtures/state-cause.txt        11         3  return-code 1, mapping 1, accounting 1  foreign-pfn 1, refcount-underflow 1, leak 2     14.9 µs          6.4 µs
                Tests/Fixtures/shared-enomem.txt       5         1  -                                       -                                                1.1 µs          1.1 µs

                """)
        let j = try CLI.run(["replay", "--summary", "--format", "json", Self.cause])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        let row = try #require((doc["summary"] as? [[String: Any]])?.first)
        #expect((row["counts"] as? [String: Any]).flatMap { $0["divergences"] as? [String: Int] }?["return-code"] == 1)
        #expect(row["est_ns"] as? [String: Int] == ["v4.16": 14860, "v4.17-rc1": 6355])
    }

    @Test("The JSON report meets docs/report.schema.json, on every golden trace through every engine")
    func schema() throws {
        let schema = try JSONSchemaLite(contentsOf: Paths.root.appendingPathComponent("docs/report.schema.json"))
        let traces = Paths.goldenTraces().map(\.path) + [Self.cause]
        let r = try CLI.run(["replay", "--engines", "all", "--format", "json"] + traces)
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        #expect(schema.problems(doc) == [])
        // And the validator does refuse what breaks it.
        var broken = try #require(doc as? [String: Any])
        broken["schema"] = 1
        broken["extra"] = true
        #expect(schema.problems(broken).sorted() == ["$.schema: not 2", "$: unexpected key extra"])
    }
}

/// `pinreplay diff`: two JSON reports, by request.
@Suite struct ReportDiffCLITests {
    @Test("diff names the trace and event of each difference; exit 1, or 0 when the reports agree")
    func diff() throws {
        let dir = Paths.scratch()
        let a = dir.appendingPathComponent("a.json").path
        let b = dir.appendingPathComponent("b.json").path
        let trace = dir.appendingPathComponent("state-cause.txt").path
        let original = try String(contentsOf: Paths.fixtures.appendingPathComponent("state-cause.txt"), encoding: .utf8)
        try original.write(toFile: trace, atomically: true, encoding: .utf8)
        try CLI.run(["replay", "--format", "json", trace]).stdout.write(toFile: a, atomically: true, encoding: .utf8)
        // With 20K of memlock the last map fails on both engines: no divergence there.
        try original.replacingOccurrences(of: "memlock 32K", with: "memlock 20K").write(toFile: trace, atomically: true, encoding: .utf8)
        try CLI.run(["replay", "--format", "json", trace]).stdout.write(toFile: b, atomically: true, encoding: .utf8)
        let r = try CLI.run(["diff", a, b])
        #expect(r.status == 1)
        #expect(
            r.stdout == """
                \(trace): counts differ
                \(trace): event 11: return-code divergence: only in \(a): v4.16 returns 0, v4.17-rc1 returns -ENOMEM; also mapping, accounting, page-references, chunk-boundaries

                """)
        #expect(try CLI.run(["diff", a, a]).status == 0)
        let bad = try CLI.run(["diff", a, trace])
        #expect(bad.status == 2 && bad.stderr == "pinreplay: \(trace): not a JSON report\n")
    }
}

/// `pinreplay bless --check`, as CI runs it.
@Suite struct BlessCheckCLITests {
    @Test("bless --check prints every changed line and exits 1; bless rewrites; then --check exits 0")
    func check() throws {
        let dir = Paths.scratch()
        let fm = FileManager.default
        let trace = dir.appendingPathComponent("hugetlb.txt")
        try fm.copyItem(at: Paths.traces.appendingPathComponent("hugetlb.txt"), to: trace)
        try fm.createDirectory(at: dir.appendingPathComponent("expected"), withIntermediateDirectories: true)
        let expected = dir.appendingPathComponent("expected/hugetlb")
        try fm.copyItem(at: Paths.traces.appendingPathComponent("expected/hugetlb"), to: expected)
        let file = expected.appendingPathComponent("v4.16.jsonl")
        let stored = try String(contentsOf: file, encoding: .utf8)
        try stored.replacingOccurrences(of: "\"ret\":-14", with: "\"ret\":-12").write(to: file, atomically: true, encoding: .utf8)
        let r = try CLI.run(["bless", "--check", trace.path])
        #expect(r.status == 1)
        #expect(
            r.stdout.contains(
                "\(trace.path): v4.16.jsonl: - {\"event\":5,\"engine\":\"v4.16\",\"op\":\"map\",\"ret\":-12,\"chunks\":[],\"locked_vm\":1280}\n"
            ))
        #expect(
            r.stdout.contains(
                "\(trace.path): v4.16.jsonl: + {\"event\":5,\"engine\":\"v4.16\",\"op\":\"map\",\"ret\":-14,\"chunks\":[],\"locked_vm\":1280}\n"
            ))
        #expect(r.stdout.hasSuffix("1 of 1 traces would change\n"))
        #expect(try CLI.run(["bless", trace.path]).status == 0)
        #expect(try String(contentsOf: file, encoding: .utf8) == stored)
        #expect(try CLI.run(["bless", "--check", trace.path]).status == 0)
        #expect(try fm.contentsOfDirectory(atPath: dir.appendingPathComponent("expected").path) == ["hugetlb"])
    }
}

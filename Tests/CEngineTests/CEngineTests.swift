import CEngines
import Foundation
import Isolation
import Replay
import TestSupport
import Testing
import TraceFormat
import VFIOEngines
import VFIOModel

/// Engines compiled from C: the project's own C renderings of v4.16 and v4.17-rc1 must give
/// exactly what the Swift engines give, request by request, on every golden trace and on
/// random traces: outcomes, costs, violations.
@Suite struct CEngineTests {
    static let fixtures = Paths.fixtures.appendingPathComponent("c-engines")
    static let cache = Paths.scratch("c-engine-cache")

    static func load(_ file: String, name: String? = nil, kernelAPI: KernelAPI? = nil) throws -> CEngine {
        try CEngineLoader.load(path: fixtures.appendingPathComponent(file).path, name: name, kernelAPI: kernelAPI, cache: cache.path)
    }

    /// Each later Swift engine and the file of its C rendering; v6.1 is 5.15's code on the 6.1
    /// world, so its rendering is 5.15's built with `--kernel-api 6.1`.
    static let later: [(swift: any Engine, file: String, api: KernelAPI)] = [
        (V5_15(), "c-v5.15.c", .v5_15), (V6_1(), "c-v5.15.c", .v6_1), (V6_12(), "c-v6.12.c", .v6_12),
        (V6_15(), "c-v6.15.c", .v6_15), (V6_18(), "c-v6.18.c", .v6_18),
    ]

    /// The pairs compared: each Swift engine, then the C engine that renders it, in this
    /// process or (`isolated`) in a sandboxed process of its own, as the command line runs it.
    static func engines(isolated: Bool = false) throws -> [any Engine] {
        func c(_ file: String, _ name: String? = nil, _ api: KernelAPI? = nil) throws -> any Engine {
            let compiled = try CEngineLoader.compile(
                path: fixtures.appendingPathComponent(file).path, name: name, kernelAPI: api, cache: cache.path)
            return isolated
                ? IsolatedCEngine(compiled, kernelAPI: api, sandbox: true, timeout: 120, worker: CLI.executable.path)
                : try CEngineLoader.open(compiled)
        }
        var engines: [any Engine] = [V4_16(), try c("c-v4.16.c"), V4_17_rc1(), try c("c-v4.17-rc1.c")]
        for pair in later {
            engines += [pair.swift, try c(pair.file, "c-\(pair.swift.name)", pair.api)]
        }
        return engines
    }

    /// Requests on which a C engine's outcome differs from its Swift engine's.
    struct Mismatches: ReplayObserver {
        var count = 0
        var first: String?
        mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
            for pair in stride(from: 0, to: outcomes.count, by: 2) where outcomes[pair] != outcomes[pair + 1] {
                count += 1
                if first == nil {
                    first = "event \(event): \(engines[pair]) \(outcomes[pair]) but \(engines[pair + 1]) \(outcomes[pair + 1])"
                }
            }
        }
    }

    /// Every per-engine figure of a report, the C engine's beside its Swift engine's.
    static func expectSameFigures(_ r: TraceReport, _ trace: String) {
        for pair in stride(from: 0, to: r.engines.count, by: 2) {
            let (s, c) = (r.summaries[pair], r.summaries[pair + 1])
            #expect(s.counters == c.counters, "\(trace): counters of \(s.engine) and \(c.engine)")
            #expect(s.chunksMapped == c.chunksMapped && s.pagesPinned == c.pagesPinned, "\(trace): chunks of \(c.engine)")
            #expect(s.lockedVMPeak == c.lockedVMPeak && s.lockedVMFinal == c.lockedVMFinal, "\(trace): locked_vm of \(c.engine)")
            for kind in ViolationKind.allCases {
                let swift = r.violationCounts[ViolationKey(engine: s.engine, kind: kind)]
                let cc = r.violationCounts[ViolationKey(engine: c.engine, kind: kind)]
                #expect(swift == cc, "\(trace): \(kind) on \(s.engine) \(swift ?? 0), on \(c.engine) \(cc ?? 0)")
            }
        }
    }

    @Test(
        "Every golden trace: the C renderings give the Swift engines' outcomes, costs and violations, in process and isolated",
        arguments: [false, true])
    func goldens(isolated: Bool) throws {
        let engines = try Self.engines(isolated: isolated)
        let traces = Paths.goldenTraces()
        #expect(traces.count >= 20)
        for trace in traces {
            var mismatches = Mismatches()
            let r = try Replayer(engines: engines).replay(path: trace.path, observer: &mismatches)
            #expect(mismatches.count == 0, "\(trace.lastPathComponent): \(mismatches.first ?? "")")
            Self.expectSameFigures(r, trace.lastPathComponent)
        }
    }

    @Test("Random traces: the same outcomes, costs and violations as the Swift engines (batch 4 isolated)", arguments: 0..<5)
    func randomTraces(batch: Int) throws {
        let engines = try Self.engines(isolated: batch == 4)
        var replayed = 0
        for seed in UInt64(batch * 250)..<UInt64(batch * 250 + 250) {
            // Statements the format refuses are left out, as a trace writer would.
            var rules = TraceRules()
            let statements = RandomTrace.statements(seed: seed).filter { rules.problem($0) == nil }
            var mismatches = Mismatches()
            let r: TraceReport
            do {
                r = try Replayer(engines: engines).replay(statements: statements, name: "seed-\(seed)", observer: &mismatches)
            } catch {
                continue  // a trace the world refuses is refused alike for every engine
            }
            replayed += 1
            #expect(mismatches.count == 0, "seed \(seed): \(mismatches.first ?? "")")
            Self.expectSameFigures(r, "seed \(seed)")
        }
        #expect(replayed > 100)
    }

    @Test("The seed's boot through C: v4.17-rc1's zero-page run, chunk for chunk")
    func seedBoot() throws {
        let c = try Self.load("c-v4.17-rc1.c")
        #expect(c.name == "c-v4.17-rc1")
        var observer = NoObserver()
        let r = try Replayer(engines: [V4_16(), c]).replay(
            path: Paths.traces.appendingPathComponent("gpu-16g-bar.vptr").path, observer: &observer)
        let first = try #require(r.divergences.first)
        #expect(first.event == 317)
        guard case .map(0, let chunks, 170) = first.outcomes[1] else {
            Issue.record("event 317 on c-v4.17-rc1: \(first.outcomes[1])")
            return
        }
        #expect(chunks == [chunk(0xc0000, 0x140000, 10), chunk(0xca000, 0x27e0, 22)])
        #expect(r.violationCounts[ViolationKey(engine: "c-v4.17-rc1", kind: .refcountUnderflow)] == 1)
        #expect(r.summaries[1].lockedVMFinal == -32)
    }

    /// The 4.16 rendering with `line` as the first line of `vfio_lock_acct()`'s body (line 12).
    static func brokenBlock(_ line: String) throws -> String {
        var lines = try String(contentsOf: fixtures.appendingPathComponent("c-v4.16.c"), encoding: .utf8)
            .components(separatedBy: "\n")
        #expect(lines[9].hasPrefix("static int vfio_lock_acct(") && lines[10] == "{")
        lines.insert(line, at: 11)
        return lines.joined(separator: "\n")
    }

    @Test("A compile error names the user's file and line; a later file lacking a needed function is one line; unknown APIs too")
    func errors() throws {
        let dir = Paths.scratch()
        let bad = dir.appendingPathComponent("broken.c")
        try Self.brokenBlock("\treturn undeclared_thing;").write(to: bad, atomically: true, encoding: .utf8)
        let error = try #require(throws: CEngineError.self) { try CEngineLoader.load(path: bad.path, cache: Self.cache.path) }
        #expect(error.message.hasPrefix("\(bad.path):12:"), "\(error.message)")
        #expect(error.message.contains("error:") && error.message.contains("undeclared_thing"))

        let later = dir.appendingPathComponent("later.c")
        try "static long vfio_pin_pages_remote(struct vfio_dma *dma, struct vfio_batch *batch) { return 0; }\n"
            .write(to: later, atomically: true, encoding: .utf8)
        let refused = try #require(throws: CEngineError.self) { try CEngineLoader.load(path: later.path, cache: Self.cache.path) }
        #expect(refused.message == "\(later.path): no definition of vfio_lock_acct(), which the pinning code needs")

        // A 4.16 block forced onto a later era lacks that era's functions.
        let forced = try CLI.run([
            "replay", "traces/hugetlb.txt", "--engines", "Tests/Fixtures/c-engines/c-v4.16.c", "--kernel-api", "6.18",
        ])
        #expect(forced.status == 2)
        #expect(
            forced.stderr
                == "pinreplay: Tests/Fixtures/c-engines/c-v4.16.c: no definition of vaddr_get_pfns(), which the pinning code needs\n")
        let api = try CLI.run(["replay", "traces/hugetlb.txt", "--engines", "Tests/Fixtures/c-engines/c-v4.16.c", "--kernel-api", "7.0"])
        #expect(api.status == 2)
        #expect(api.stderr.hasPrefix("pinreplay: The value '7.0' is invalid for '--kernel-api <kernel-api>'."))
        let missing = try #require(throws: CEngineError.self) { try CEngineLoader.load(path: dir.appendingPathComponent("none.c").path) }
        #expect(missing.message.hasSuffix("none.c: cannot read: No such file or directory"))
    }

    @Test(
        "The era comes from what the file uses: each rendering's own, 6.1 by user_iova, 4.16 without a batch",
        arguments: [
            ("c-v4.16.c", KernelAPI.v4_16), ("c-v5.15.c", .v5_15), ("c-v6.12.c", .v6_12), ("c-v6.15.c", .v6_15), ("c-v6.18.c", .v6_18),
        ])
    func eras(file: String, api: KernelAPI) throws {
        #expect(try Self.load(file).kernelAPI == api.rawValue)
        #expect(try Self.load(file).profile == api.profile)
        let text = try String(contentsOf: Self.fixtures.appendingPathComponent(file), encoding: .utf8)
        if api == .v5_15 {
            let v6_1 = text + "static int vfio_iommu_type1_pin_pages(void *iommu_data, dma_addr_t user_iova, int npage) { return 0; }\n"
            #expect(KernelAPI.detect(v6_1) == .v6_1)
        }
        // 7.x: 6.18's pinning code with the typed allocators compiles as 6.18.
        if api == .v6_18 {
            #expect(
                KernelAPI.detect(text.replacingOccurrences(of: "vpfn_pages", with: "vpfn_count") + "/* kzalloc_obj(*p, GFP_KERNEL) */")
                    == .v6_18)
        }
    }

    @Test("A 7.x file (6.18's pinning code with cond_resched() and kzalloc_obj()) compiles as 6.18 and gives v6.18 on every golden")
    func sevenX() throws {
        var text = try String(contentsOf: Self.fixtures.appendingPathComponent("c-v6.18.c"), encoding: .utf8)
        let refill = "\t\tif (!batch->size) {\n\t\t\tret = vaddr_get_pfns("
        let external = "\tmm = dma->mm;\n\tif (!mmget_not_zero(mm))\n\t\treturn -ENODEV;\n"
        #expect(text.components(separatedBy: refill).count == 2 && text.components(separatedBy: external).count == 2)
        text = text.replacingOccurrences(of: refill, with: "\t\tif (!batch->size) {\n\t\t\tcond_resched();\n\t\t\tret = vaddr_get_pfns(")
        text = text.replacingOccurrences(
            of: external, with: external + "\t{\n\t\tstruct vfio_pfn *probe = kzalloc_obj(*probe, GFP_KERNEL);\n\n\t\tkfree(probe);\n\t}\n")
        let file = Paths.scratch().appendingPathComponent("vfio_iommu_type1-7.x.c")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let c = try CEngineLoader.load(path: file.path, name: "c-7.x", cache: Self.cache.path)
        #expect(c.kernelAPI == "6.18")
        for trace in Paths.goldenTraces() {
            var mismatches = Mismatches()
            let r = try Replayer(engines: [V6_18(), c]).replay(path: trace.path, observer: &mismatches)
            #expect(mismatches.count == 0, "\(trace.lastPathComponent): \(mismatches.first ?? "")")
            Self.expectSameFigures(r, trace.lastPathComponent)
        }
    }

    @Test("Breaking one line of a later rendering is seen: each broken copy differs from its Swift engine (goldens, then random traces)")
    func brokenRenderings() throws {
        // One line each, where the era's logic lives; every broken copy must diverge somewhere.
        let breaks: [(file: String, api: KernelAPI, line: String, broken: String)] = [
            ("c-v5.15.c", .v5_15, "\t\tif (unlikely(disable_hugepages))", "\t\tif (0)"),
            ("c-v6.12.c", .v6_12, "\tif (write_fault && !args.writable)", "\tif (0)"),
            ("c-v6.15.c", .v6_15, "\t\t\t\tret = min_t(long, npages, epfn - *pfn);", "\t\t\t\tret = 1;"),
            ("c-v6.18.c", .v6_18, "\tdma->has_rsvd |= rsvd;", "\t;"),
            ("c-v6.18.c", .v6_18, "\t\tunlocked = npage;", "\t\tunlocked = 0;"),
        ]
        let dir = Paths.scratch()
        for (i, b) in breaks.enumerated() {
            let text = try String(contentsOf: Self.fixtures.appendingPathComponent(b.file), encoding: .utf8)
            #expect(text.components(separatedBy: b.line).count == 2, "\(b.file): \(b.line)")
            let broken = dir.appendingPathComponent("broken-\(i).c")
            try text.replacingOccurrences(of: b.line, with: b.broken).write(to: broken, atomically: true, encoding: .utf8)
            let c = try CEngineLoader.load(path: broken.path, kernelAPI: b.api, cache: Self.cache.path)
            let swift = try #require(Self.later.first { $0.api == b.api }?.swift)
            var differ = 0
            // The goldens, then random traces, until the broken line shows.
            var runs: [() throws -> TraceReport] = Paths.goldenTraces().map { trace in
                {
                    var observer = NoObserver()
                    return try Replayer(engines: [swift, c]).replay(path: trace.path, observer: &observer)
                }
            }
            for seed in UInt64(0)..<1000 {
                var rules = TraceRules()
                let statements = RandomTrace.statements(seed: seed).filter { rules.problem($0) == nil }
                runs.append {
                    var observer = NoObserver()
                    return try Replayer(engines: [swift, c]).replay(statements: statements, name: "seed-\(seed)", observer: &observer)
                }
            }
            for run in runs where differ == 0 {
                guard let r = try? run() else { continue }
                differ += r.divergences.count + (r.summaries[0].counters == r.summaries[1].counters ? 0 : 1)
                for kind in ViolationKind.allCases
                where r.violationCounts[ViolationKey(engine: swift.name, kind: kind)]
                    != r.violationCounts[ViolationKey(engine: c.name, kind: kind)]
                {
                    differ += 1
                }
            }
            #expect(differ > 0, "\(b.file) with \(b.line) broken gives what \(swift.name) gives on every golden")
        }
    }

    @Test("The shared object is cached by content: a second load compiles nothing, an edit compiles anew")
    func cache() throws {
        let dir = Paths.scratch()
        let cache = dir.appendingPathComponent("cache")
        let file = dir.appendingPathComponent("mine.c")
        let source = try String(contentsOf: Self.fixtures.appendingPathComponent("c-v4.16.c"), encoding: .utf8)
        try source.write(to: file, atomically: true, encoding: .utf8)
        func libraries() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent("c-engines").path).filter {
                $0.hasSuffix(".so")
            }.sorted()
        }
        _ = try CEngineLoader.load(path: file.path, cache: cache.path)
        let once = try libraries()
        #expect(once.count == 1)
        #expect(once[0].hasPrefix("mine-4.16-") && once[0].hasSuffix(".so"))
        _ = try CEngineLoader.load(path: file.path, cache: cache.path)
        #expect(try libraries() == once)
        try (source + "\n/* edited */\n").write(to: file, atomically: true, encoding: .utf8)
        _ = try CEngineLoader.load(path: file.path, cache: cache.path)
        #expect(try libraries().count == 2)
    }

    @Test("From the command line: a C file among the engines, named by its stem; a broken one exits 2 with one line")
    func commandLine() throws {
        let r = try CLI.run([
            "replay", "traces/gpu-16g-bar.vptr", "--engines", "v4.16,Tests/Fixtures/c-engines/c-v4.16.c", "--format", "jsonl",
        ])
        #expect(r.status == 0)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let swift = lines.filter { $0.contains("\"engine\":\"v4.16\"") }
        let c = lines.filter { $0.contains("\"engine\":\"c-v4.16\"") }
        #expect(swift.count == 80)
        #expect(c.map { $0.replacingOccurrences(of: "\"c-v4.16\"", with: "\"v4.16\"") } == swift)

        let dir = Paths.scratch()
        let bad = dir.appendingPathComponent("typo.c")
        try Self.brokenBlock("\treturn npage +;").write(to: bad, atomically: true, encoding: .utf8)
        let broken = try CLI.run(["replay", "traces/hugetlb.txt", "--engines", "v4.16,\(bad.path)"])
        #expect(broken.status == 2)
        #expect(broken.stdout.isEmpty)
        #expect(broken.stderr.hasPrefix("pinreplay: \(bad.path):12:"), "\(broken.stderr)")
        #expect(broken.stderr.split(separator: "\n").count == 1)
        let twice = try CLI.run([
            "replay", "traces/hugetlb.txt", "--engines", "Tests/Fixtures/c-engines/c-v4.16.c,Tests/Fixtures/c-engines/c-v4.16.c",
        ])
        #expect(twice.status == 2)
        #expect(twice.stderr == "pinreplay: engine 'c-v4.16' named twice\n")
        // NAME=PATH names the engine: the same file twice under two names is two engines.
        let named = try CLI.run([
            "replay", "traces/hugetlb.txt", "--engines",
            "mine=Tests/Fixtures/c-engines/c-v4.16.c,theirs=Tests/Fixtures/c-engines/c-v4.16.c",
            "--format", "jsonl",
        ])
        #expect(named.status == 0, "\(named.stderr)")
        let mine = named.stdout.split(separator: "\n").filter { $0.contains("\"engine\":\"mine\"") }
        let theirs = named.stdout.split(separator: "\n").filter { $0.contains("\"engine\":\"theirs\"") }
        #expect(!mine.isEmpty && mine.map { $0.replacingOccurrences(of: "\"mine\"", with: "\"theirs\"") } == theirs.map(String.init))
        let reduce = try CLI.run(["reduce", "traces/seed-gpu-boot.txt", "--engines", "old,rc=Tests/Fixtures/c-engines/c-v4.17-rc1.c"])
        #expect(reduce.status == 0, "\(reduce.stderr)")
        #expect(reduce.stdout.hasPrefix("# pinreplay reduce: mapping on v4.16,rc\n"), "\(reduce.stdout)")
    }

    @Test("Installed anywhere: the headers travel inside the binary, in step with include/; a copy outside the tree compiles C engines")
    func installedAnywhere() throws {
        let include = Paths.root.appendingPathComponent("include")
        let files = try FileManager.default.contentsOfDirectory(atPath: include.appendingPathComponent("pinreplay").path)
        #expect(Set(CEngineLoader.embeddedFiles.keys) == Set(files.map { "pinreplay/" + $0 }), "run tools/embed-include.sh")
        for (path, text) in CEngineLoader.embeddedFiles {
            #expect(
                try String(contentsOf: include.appendingPathComponent(path), encoding: .utf8) == text, "\(path): run tools/embed-include.sh"
            )
        }
        let dir = Paths.scratch()
        let copy = dir.appendingPathComponent("pinreplay")
        try FileManager.default.copyItem(at: CLI.executable, to: copy)
        let fixture = Paths.root.appendingPathComponent("Tests/Fixtures/c-engines/c-v4.16.c").path
        let r = try CLI.run(
            ["replay", "traces/hugetlb.txt", "--engines", "v4.16,\(fixture)", "--format", "jsonl"], binary: copy,
            environment: ["PINREPLAY_CACHE": dir.appendingPathComponent("cache").path, "PINREPLAY_INCLUDE": ""])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\"engine\":\"c-v4.16\""))
        let written = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("cache/c-engines").path)
        #expect(written.contains { $0.hasPrefix("include-") })
    }

    @Test("fuzz takes C engines too: 200 swarm traces find nothing between v4.16 and its C rendering")
    func fuzzEquivalence() throws {
        let r = try CLI.run(["fuzz", "--engines", "v4.16,Tests/Fixtures/c-engines/c-v4.16.c", "--seed", "7", "--count", "200"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout == "200 traces, seed 7, engines v4.16,c-v4.16: 0 kinds found\n")
    }
}

/// The extractor that cuts the pinning functions out of a whole vfio_iommu_type1.c.
@Suite struct CExtractorTests {
    static let sample = """
        // SPDX-License-Identifier: GPL-2.0-only
        /* A comment holding braces: { { } and a fake signature: int x(void) { */
        #include <linux/module.h>
        #define BANNER "vfio { type1"
        static const char *banner = "not a { brace } in a string";
        static const char open_brace = '{';
        struct vfio_iommu {
        \tint v2;
        };
        static int a(int x)
        {
        \tif (x > 1) {
        \t\treturn b(x - 1) + e(x); /* calls b, defined after it; e is the header's */
        \t}
        \treturn '}';
        }

        static int d(void) { return 4; }

        #ifdef CONFIG_B_VARIANT
        static int c(int y) { return y + 1; }
        #else
        static int c(int y)
        {
        #ifdef CONFIG_INNER
        \treturn y;
        #endif
        \treturn y - 1;
        }
        #endif

        static int b(int x)
        {
        \tchar s[] = "}";
        \treturn c(x) + s[0];
        }

        static long vfio_iommu_type1_ioctl(void *data, unsigned int cmd, unsigned long arg) { return d(); }
        """

    @Test("A whole file: the needed function and the helpers it calls (after it, under #ifdef), comments and strings with braces skipped")
    func extract() throws {
        let e = CExtractor(Self.sample, path: "whole.c")
        #expect(e.isWholeFile)
        #expect(e.functionNames == ["a", "d", "c", "c", "b", "vfio_iommu_type1_ioctl"])
        let cut = try e.extract(needed: ["a"], provided: ["e"])
        let expected = """
            /* cut by pinreplay from whole.c: 4 functions */
            #line 10 "whole.c"
            static int a(int x)
            {
            \tif (x > 1) {
            \t\treturn b(x - 1) + e(x); /* calls b, defined after it; e is the header's */
            \t}
            \treturn '}';
            }
            #ifdef CONFIG_B_VARIANT
            #line 21 "whole.c"
            static int c(int y) { return y + 1; }
            #endif
            #ifdef CONFIG_B_VARIANT
            #else
            #line 23 "whole.c"
            static int c(int y)
            {
            #ifdef CONFIG_INNER
            	return y;
            #endif
            	return y - 1;
            }
            #endif
            #line 32 "whole.c"
            static int b(int x)
            {
            \tchar s[] = "}";
            \treturn c(x) + s[0];
            }

            """
        #expect(cut == expected)
        #expect(throws: CEngineError(message: "whole.c: no definition of vaddr_get_pfn(), which the pinning code needs")) {
            try e.extract(needed: ["a", "vaddr_get_pfn"], provided: [])
        }
        // A block cut by hand is no whole file.
        #expect(!CExtractor("static int a(void) { return 0; }\n", path: "block.c").isWholeFile)
    }

    @Test("A whole vfio_iommu_type1.c is cut and compiled: the same outcomes as its cut block")
    func wholeFile() throws {
        let block = try String(contentsOf: Paths.fixtures.appendingPathComponent("c-engines/c-v4.16.c"), encoding: .utf8)
        let whole = """
            // SPDX-License-Identifier: GPL-2.0-only
            /* vfio_iommu_type1.c as a tree holds it: includes, module parameters, the container. { */
            #include <linux/compat.h>
            #include <linux/vfio.h>
            #define DRIVER_VERSION  "0.2"
            static bool allow_unsafe_interrupts;
            module_param_named(allow_unsafe_interrupts, allow_unsafe_interrupts, bool, S_IRUGO | S_IWUSR);
            struct vfio_iommu_shadow {
            \tstruct list_head\tdomain_list;
            \tbool\t\t\tv2;
            };
            static struct vfio_dma *vfio_find_dma_shadow(struct vfio_iommu_shadow *iommu, dma_addr_t start, size_t size)
            {
            \treturn NULL; /* a container function the pinning code never calls: left out */
            }

            \(block)

            #ifdef CONFIG_NEVER
            static int never_compiled(void) { return "}"[0]; }
            #endif

            static long vfio_iommu_type1_ioctl(void *iommu_data, unsigned int cmd, unsigned long arg)
            {
            \treturn vfio_find_dma_shadow(NULL, 0, 0) ? 0 : -ENOTTY;
            }
            """
        let dir = Paths.scratch()
        let file = dir.appendingPathComponent("vfio_iommu_type1.c")
        try whole.write(to: file, atomically: true, encoding: .utf8)
        let r = try CLI.run([
            "replay", "traces/seed-gpu-boot.txt", "--engines", "block=Tests/Fixtures/c-engines/c-v4.16.c,whole=\(file.path)", "--format",
            "jsonl",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let block1 = lines.filter { $0.contains("\"engine\":\"block\"") }
        let whole1 = lines.filter { $0.contains("\"engine\":\"whole\"") }.map {
            $0.replacingOccurrences(of: "\"whole\"", with: "\"block\"")
        }
        #expect(!block1.isEmpty && whole1 == block1)
        // Without vaddr_get_pfn() the file cannot serve: one line says which function is missing.
        let cut = whole.replacingOccurrences(of: "vaddr_get_pfn(struct mm_struct", with: "vaddr_get_pfn_renamed(struct mm_struct")
        try cut.write(to: file, atomically: true, encoding: .utf8)
        let missing = try CLI.run(["replay", "traces/seed-gpu-boot.txt", "--engines", "v4.16,\(file.path)"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "pinreplay: \(file.path): no definition of vaddr_get_pfn(), which the pinning code needs\n")
    }
}

/// C engines run isolated: code under review that crashes, hangs or reaches for the system is a
/// finding of that engine at that event, never the end of the report.
@Suite struct IsolationTests {
    /// The 4.16 rendering with `fault` injected at the top of vfio_pin_pages_remote(), taken
    /// `when` it holds: by default on the seed boot's first request of more than 1000 pages
    /// (event 18).
    static func badEngine(_ name: String, _ fault: String, when: String = "npage > 1000") throws -> String {
        let src = try String(contentsOf: CEngineTests.fixtures.appendingPathComponent("c-v4.16.c"), encoding: .utf8)
        let anchor = "\tif (current->mm == NULL)\n\t\treturn -ENODEV;\n"
        #expect(src.contains(anchor))
        let file = Paths.scratch("bad-\(name)").appendingPathComponent("\(name).c")
        try src.replacingOccurrences(of: anchor, with: anchor + "\tif (\(when)) {\n\(fault)\n\t}\n").write(
            to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    static let faults: [(String, String, String)] = [
        ("null", "\t\t*(volatile int *)0 = 1;", "SIGSEGV in vfio_pin_pages_remote() (null.c:131)"),
        ("spin", "\t\tfor (;;)\n\t\t\t;", "no answer within 2 s (a hang, or an endless loop): the engine's process was killed"),
        (
            "snoop", "\t\textern int open(const char *, int, ...);\n\t\topen(\"/etc/passwd\", 0);",
            "SIGSYS: the sandbox refused system call openat (257)"
        ),
        (
            "spawn",
            "\t\textern int execve(const char *, char *const[], char *const[]);\n\t\tchar *argv[] = { \"/bin/true\", 0 };\n\t\texecve(\"/bin/true\", argv, 0);",
            "SIGSYS: the sandbox refused system call execve (59)"
        ),
        ("abort", "\t\textern void abort(void);\n\t\tabort();", "SIGABRT"),
    ]

    @Test("A crashing, hanging or forbidden C engine is a crash finding at its event; the others' outcomes are untouched", arguments: 0..<5)
    func badEngines(index: Int) throws {
        let (name, fault, what) = Self.faults[index]
        let path = try Self.badEngine(name, fault)
        let alone = try CLI.run(["replay", "traces/seed-gpu-boot.txt", "--engines", "v4.16", "--format", "jsonl"])
        let r = try CLI.run([
            "replay", "traces/seed-gpu-boot.txt", "--engines", "v4.16,\(path)", "--format", "jsonl", "--engine-timeout", "2",
        ])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.isEmpty)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        // v4.16 byte for byte as without the bad engine.
        #expect(lines.filter { !$0.contains("\"engine\":\"\(name)\"") } == alone.stdout.split(separator: "\n").map(String.init))
        let mine = lines.filter { $0.contains("\"engine\":\"\(name)\"") }
        let report = try CLI.run([
            "replay", "traces/seed-gpu-boot.txt", "--engines", "v4.16,\(path)", "--format", "json", "--engine-timeout", "2",
        ])
        #expect(report.stdout.contains("{\"engine\":\"\(name)\",\"event\":18,\"kind\":\"crash\",\"detail\":\"\(what)\"}"))
        #expect(report.stdout.contains("\"\(name)\":{\"foreign-pfn\":0,\"refcount-underflow\":0,\"leak\":0,\"crash\":1}"))
        let text = try CLI.run(["replay", "traces/seed-gpu-boot.txt", "--engines", "v4.16,\(path)", "--engine-timeout", "2"])
        #expect(text.stdout.contains("\ninvariant violations: 1\n  \(name):\n    crash: 1\n      event 18: \(what)\n"))
        #expect(text.stdout.contains("\ndivergences: none among the requests every engine ran (\(name) stopped at event 18)\n"))
        // Every request from the crash on: not run.
        #expect(mine.contains("{\"event\":18,\"engine\":\"\(name)\",\"op\":\"map\",\"not_run\":true}"))
        #expect(mine.contains("{\"event\":17,\"engine\":\"\(name)\",\"op\":\"map\",\"not_run\":true}") == false)
        #expect(mine.filter { $0.contains("\"not_run\":true") }.count == 5)
    }

    @Test("What an engine prints does not reach the records: a chatty rendering is still v4.16")
    func chattyEngine() throws {
        let path = try Self.badEngine(
            "chatty", "\t\textern int printf(const char *, ...);\n\t\tprintf(\"E 1 bogus\\n\");", when: "npage > 0")
        let alone = try CLI.run(["replay", "traces/seed-gpu-boot.txt", "--engines", "v4.16", "--format", "jsonl"])
        let r = try CLI.run(["replay", "traces/seed-gpu-boot.txt", "--engines", "v4.16,\(path)", "--format", "jsonl"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let mine = r.stdout.split(separator: "\n").filter { $0.contains("\"engine\":\"chatty\"") }
        let reference = alone.stdout.split(separator: "\n").filter { $0.hasPrefix("{\"event\":") }
        #expect(mine.map { $0.replacingOccurrences(of: "\"chatty\"", with: "\"v4.16\"") } == reference.map(String.init))
    }

    @Test("A constructor in the code under review runs only in its worker: a crash there is the engine's finding, not pinreplay's end")
    func constructorCrash() throws {
        var text = try String(contentsOf: CEngineTests.fixtures.appendingPathComponent("c-v4.16.c"), encoding: .utf8)
        let head = "static int vfio_lock_acct(struct task_struct *task, long npage, bool *lock_cap)\n{\n"
        #expect(text.components(separatedBy: head).count == 2)
        // A helper the cut keeps (vfio_lock_acct() calls it) that runs when the library loads.
        text = text.replacingOccurrences(
            of: head,
            with: "__attribute__((constructor)) static void on_load(void) { __builtin_trap(); }\n\n" + head
                + "\tif (npage == 12345)\n\t\ton_load();\n")
        let file = Paths.scratch().appendingPathComponent("on-load.c")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let r = try CLI.run(["replay", "traces/hugetlb.txt", "--engines", "v4.16,\(file.path)", "--format", "json"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.isEmpty)
        #expect(r.stdout.contains("\"engine\":\"on-load\",\"event\":1,\"kind\":\"crash\""), "\(r.stdout.prefix(2000))")
    }

    @Test("fuzz counts a crash as a finding and writes its reproducer")
    func fuzzCrash() throws {
        // Crashes on every pinning: v4.16's own findings after the crash have nothing to be
        // compared with and are not findings.
        let path = try Self.badEngine("null", Self.faults[0].1, when: "npage > 0")
        let out = Paths.scratch("fuzz-crash")
        let r = try CLI.run(["fuzz", "--engines", "v4.16,\(path)", "--seed", "1", "--count", "20", "--out", out.path])
        #expect(r.status == 1, "\(r.stderr)")
        let file = out.appendingPathComponent("seed-1-0-violation-crash-null.txt")
        #expect(
            r.stdout == """
                20 traces, seed 1, engines v4.16,null: 1 kinds found
                kind                              traces  reproducer
                violation:crash@null              20      \(file.path)

                """)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == [file.lastPathComponent])
        #expect(
            try String(contentsOf: file, encoding: .utf8) == """
                # pinreplay fuzz --seed 1: trace 0 shows violation:crash@null on v4.16,null
                # features: ram-shared pfnmap-linear pfnmap-scattered mixedmap memlock churn huge-leaves
                vptr-text 1
                map 0x1e0000 0x7f0010007000 0x1000 rw

                """)
    }

    @Test("reduce --keep crash@ENGINE shrinks the trace to a short reproducer of the crash")
    func reduceCrash() throws {
        let path = try Self.badEngine("null", Self.faults[0].1)
        let r = try CLI.run(["reduce", "traces/seed-gpu-boot.txt", "--engines", "v4.16,\(path)", "--keep", "crash@null"])
        #expect(r.status == 0, "\(r.stderr)")
        let statements = r.stdout.split(separator: "\n").filter { !$0.hasPrefix("#") && $0 != "vptr-text 1" }
        #expect(r.stdout.hasPrefix("# pinreplay reduce: violation:crash@null on v4.16,null\n"), "\(r.stdout)")
        #expect(statements.count <= 4, "\(statements)")
        #expect(statements.contains { $0.hasPrefix("map ") })
    }
}

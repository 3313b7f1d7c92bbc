import Foundation
import Replay
import TestSupport
import Testing
import VFIOEngines
import VFIOModel

/// Every trace under traces/ against its expected results, one file per engine.
@Suite struct GoldenTraceTests {
    static let traces = Paths.goldenTraces().map(\.path)

    @Test("The golden suite is there: traces of every kind, each with a file per engine and the pair's report")
    func inventory() throws {
        let names = Set(Self.traces.map { URL(fileURLWithPath: $0).lastPathComponent })
        for required in [
            "gpu-16g-bar.vptr", "nic-sriov-4vf.vptr", "viommu-churn.vptr", "hugetlb-1g-64g.vptr", "tight-memlock.vptr",
            "intx-no-kvm.vptr", "clean-ram-only-anon.vptr", "clean-ram-only-thp.vptr", "clean-ram-only-hugetlb-2m.vptr",
            "seed-gpu-boot.txt", "errno-map.txt", "errno-unmap.txt", "external-pins.txt", "memlock-boundary.txt",
            "fault-pool.txt", "hugetlb.txt", "inv-foreign-pfn-nonlinear-pfnmap.txt",
        ] {
            #expect(names.contains(required), "traces/\(required) is missing")
        }
        let wanted = Set(Engines.all.map { Golden.fileName(engine: $0.name) } + [Golden.reportFile])
        for t in Self.traces {
            let stored = try #require(Golden.stored(trace: t), "\(t) has no expected results")
            #expect(Set(stored.files.map(\.name)) == wanted, "\(t)")
        }
        let readme = try String(contentsOf: Paths.traces.appendingPathComponent("README.md"), encoding: .utf8)
        for n in names { #expect(readme.contains(n), "traces/README.md does not list \(n)") }
    }

    @Test("A replay gives exactly the expected results", arguments: traces)
    func matchesExpected(trace: String) throws {
        for d in Golden.differences(expected: Golden.stored(trace: trace), got: try Golden.render(trace: trace)) {
            Issue.record("\(URL(fileURLWithPath: trace).lastPathComponent): \(d)")
        }
    }

    @Test("The clean traces stay clean on every engine")
    func cleanStaysClean() throws {
        for t in Self.traces where t.contains("/clean-") {
            let stored = try #require(Golden.stored(trace: t))
            #expect(Golden.counts(stored) == (0, 0), "\(t)")
        }
        // The seed's boot: five divergences of the pair, six violations (all v4.17-rc1's).
        let seed = try #require(Golden.stored(trace: Paths.traces.appendingPathComponent("gpu-16g-bar.vptr").path))
        #expect(Golden.counts(seed) == (5, 6))
    }

    @Test("A1: fixed gives v4.16's outcomes, references and violations on every golden; only its counters differ")
    func fixedEqualsV416() throws {
        for t in Self.traces {
            let stored = try #require(Golden.stored(trace: t))
            #expect(try Self.outcomes(stored, "fixed", as: "v4.16") == Self.outcomes(stored, "v4.16", as: "v4.16"), "\(t)")
        }
    }

    /// An engine's stored lines, its counters aside, with its name replaced by `as`.
    static func outcomes(_ stored: Golden.Results, _ engine: String, as name: String) throws -> [String] {
        try #require(stored[Golden.fileName(engine: engine)]).split(separator: "\n").dropLast()
            .map { $0.replacingOccurrences(of: "\"engine\":\"\(engine)\"", with: "\"engine\":\"\(name)\"") }
    }

    @Test("A2: v6.1 = v5.15 but for D8 and D11, v6.15 = v6.12 but for D10, v6.18 = v6.15 but for D9 and D14, on every golden")
    func neighboursAgree() throws {
        let pairs: [(String, String, [String])] = [
            ("v5.15", "v6.1", ["later-d08-", "later-d11-"]),
            ("v6.12", "v6.15", ["later-d10-"]),
            (
                "v6.15", "v6.18",
                [
                    "later-d09-", "div-accounting-ram-then-reserved", "later-d14-", "errno-map", "selftest-vfio-dma-map-limit-",
                    "iommufd-i10-",
                ]
            ),
        ]
        for t in Self.traces {
            let stored = try #require(Golden.stored(trace: t))
            for (a, b, cases) in pairs {
                let same = try Self.outcomes(stored, a, as: "x") == Self.outcomes(stored, b, as: "x")
                let isCase = cases.contains { t.contains("/" + $0) }
                #expect(same != isCase, "\(t): \(a) and \(b) \(same ? "agree where they should not" : "differ")")
            }
        }
    }

    @Test("Each divergence D1-D14 has a golden that shows it on the engines SPEC-LATER names")
    func divergenceCases() throws {
        // trace, the engine before the change, one more engine that must agree with it, the
        // first engine with the change.
        let cases: [(String, String, String, String)] = [
            ("later-page-error", "v4.16", "fixed", "v5.15"),  // D1
            ("later-d02-batch-faults-ahead", "v4.16", "fixed", "v5.15"),  // D2
            ("div-mapping-zero-page", "v4.16", "v6.1", "v6.12"),  // D3
            ("later-03-ro-unshare", "v4.16", "v6.1", "v6.12"),  // D3
            ("inv-foreign-pfn-nonlinear-pfnmap", "v4.16", "fixed", "v5.15"),  // D4
            ("later-d04-pfnmap-follow-pte", "v4.16", "fixed", "v5.15"),  // D4
            ("later-d05-pfn-zero", "v4.16", "fixed", "v5.15"),  // D5
            ("errno-unmap", "v4.16", "fixed", "v5.15"),  // D6
            ("later-d07-dma-entry-limit", "v4.16", "fixed", "v5.15"),  // D7
            ("later-d08-external-pin-mmio", "v5.15", "v4.16", "v6.1"),  // D8
            ("later-d09-reserved-then-ram", "v6.15", "v4.16", "v6.18"),  // D9
            ("later-d10-leaf-with-ram", "v6.12", "v5.15", "v6.15"),  // D10
            ("later-d11-ro-shared-anon", "v4.16", "v5.15", "v6.1"),  // D11
            ("later-d11-ro-shared-anon", "v6.1", "v6.1", "v6.12"),  // D11: non-anon pages from 6.2
            ("later-d12-follow-pte-leaf", "v4.16", "v6.12", "v5.15"),  // D12
            ("later-d12-follow-pte-leaf", "v5.15", "v6.1", "v4.16"),  // D12
            ("later-d13-bar-pte-none", "v4.16", "v6.12", "v5.15"),  // D13
            ("later-d13-bar-pte-none", "v5.15", "v6.1", "v6.18"),  // D13
            ("later-d14-top-of-iova", "v5.15", "v6.15", "v6.18"),  // D14
            ("later-d14-top-of-iova", "v4.16", "fixed", "v5.15"),  // D6 at the top
        ]
        for (name, before, agrees, changed) in cases {
            let trace = try #require(Self.traces.first { $0.hasSuffix("/\(name).txt") }, "traces/\(name).txt")
            let stored = try #require(Golden.stored(trace: trace))
            let old = try Self.outcomes(stored, before, as: "x")
            #expect(try Self.outcomes(stored, agrees, as: "x") == old, "\(name): \(agrees)")
            #expect(try Self.outcomes(stored, changed, as: "x") != old, "\(name): \(changed)")
        }
    }

    @Test("iommufd: each divergence I1-I11 differs from v6.18 on both iommufd engines where SPEC-IOMMUFD says so; the agreements hold")
    func iommufdCases() throws {
        // trace, whether iommufd differs from v6.18, whether iommufd-compat does.
        let cases: [(String, Bool, Bool)] = [
            ("iommufd-i01-bar", true, true), ("iommufd-i02-cap-ipc-lock", true, true),
            ("iommufd-i03-reserved-pages", true, true), ("iommufd-i04-memlock-unwind", true, true),
            ("iommufd-i05-unmap-enoent", true, true), ("iommufd-i06-user-locked-vm", true, false),
            ("iommufd-i07-mdev-pins", false, false), ("iommufd-i08-no-entry-limit", true, true),
            ("iommufd-i09-no-access-bits", false, true), ("iommufd-i10-overflow", false, false),
            ("iommufd-i11-disable-hugepages", true, true), ("iommufd-agree-ram", false, false),
        ]
        for (name, native, compat) in cases {
            let trace = try #require(Self.traces.first { $0.hasSuffix("/\(name).txt") }, "traces/\(name).txt")
            let stored = try #require(Golden.stored(trace: trace))
            let base = try Self.outcomes(stored, "v6.18", as: "x")
            #expect(try (Self.outcomes(stored, "iommufd", as: "x") != base) == native, "\(name): iommufd")
            #expect(try (Self.outcomes(stored, "iommufd-compat", as: "x") != base) == compat, "\(name): iommufd-compat")
        }
        // I7 shows in references only: the report counts a page-references divergence.
        let pins = try #require(Self.traces.first { $0.hasSuffix("/iommufd-i07-mdev-pins.txt") })
        var observer = JSONLObserver()
        let report = try Replayer(engines: ["v6.18", "iommufd"].compactMap(Engines.named)).replay(path: pins, observer: &observer)
        // The pin takes references on v6.18 only, and its unpin drops them on v6.18 only.
        #expect(report.divergences.map(\.event) == [6, 8])
        #expect(report.divergences.map(\.kind) == [.pageReferences, .pageReferences])
        #expect(report.divergences.first?.detail == "net ram page references v6.18 +2, iommufd +0")
    }

    /// v4.16 with its run one page short: the contiguity walk off by one, on purpose.
    struct OffByOne: PinEngine {
        let base = V4_16()
        var name: String { "v4.16" }
        var aliases: [String] { [] }
        var summary: String { "v4.16 with the walk stopping one page early" }
        var kernels: String { "none" }
        var profile: EngineProfile { .v4_16 }
        func vfio_pin_pages_remote(
            _ k: VFIOModel.Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
            _ batch: inout VFIOBatch
        ) -> Int {
            base.vfio_pin_pages_remote(k, dma, vaddr, npage > 1 ? npage - 1 : npage, &pfn_base, limit, &batch)
        }
        func vfio_pin_page_external(
            _ k: VFIOModel.Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool
        ) -> Int {
            base.vfio_pin_page_external(k, dma, vaddr, &pfn_base, do_accounting)
        }
    }

    @Test("The suite is not vacuous: a mutated engine fails it")
    func mutantFails() throws {
        let engines: [any Engine] = [OffByOne()]
        var unnoticed: [String] = []
        // The hand-written traces are enough to show it, and quick.
        for t in Self.traces where t.hasSuffix(".txt") {
            let got = try Golden.render(trace: t, engines: engines, pair: engines)
            if got["v4.16.jsonl"] == Golden.stored(trace: t)?["v4.16.jsonl"] {
                unnoticed.append(URL(fileURLWithPath: t).deletingPathExtension().lastPathComponent)
            }
        }
        // Every trace where v4.16 maps a chunk of more than one page, or a run that stops
        // before the end of its request, shows the mutation; these do neither (single-page
        // maps, disable_hugepages, or no map that succeeds on v4.16).
        #expect(
            unnoticed.sorted() == [
                "div-chunk-boundaries-disable-hugepages",
                "div-return-code-io-without-pfnmap",
                "iommufd-i04-memlock-unwind",
                "iommufd-i08-no-entry-limit",
                "iommufd-i09-no-access-bits",
                "iommufd-i10-overflow",
                "iommufd-i11-disable-hugepages",
                "later-d02-batch-faults-ahead",
                "later-d07-dma-entry-limit",
                "later-d10-leaf-with-ram",
                "later-d14-top-of-iova",
                "selftest-vfio-dma-map-limit-overflow",
                "selftest-vfio-dma-map-limit-unmap-all",
                "selftest-vfio-dma-map-limit-unmap-range",
            ])
    }
}

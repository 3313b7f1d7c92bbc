import Foundation
import Replay
import Testing
import TestSupport
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
    }

    @Test("A1: fixed gives v4.16's outcomes, references and violations on every golden; only its counters differ")
    func fixedEqualsV416() throws {
        for t in Self.traces {
            let stored = try #require(Golden.stored(trace: t))
            let old = try #require(stored["v4.16.jsonl"]).split(separator: "\n").dropLast()
            let fixed = try #require(stored["fixed.jsonl"]).split(separator: "\n").dropLast()
            let renamed = fixed.map { $0.replacingOccurrences(of: "\"engine\":\"fixed\"", with: "\"engine\":\"v4.16\"") }
            #expect(renamed == old.map(String.init), "\(t)")
        }
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
        let engines: [any PinEngine] = [OffByOne()]
        var failing = 0
        var checked = 0
        // The hand-written traces are enough to show it, and quick.
        for t in Self.traces where t.hasSuffix(".txt") {
            checked += 1
            let got = try Golden.render(trace: t, engines: engines, pair: engines)
            if got["v4.16.jsonl"] != Golden.stored(trace: t)?["v4.16.jsonl"] { failing += 1 }
        }
        // Every trace that maps more than one page in one chunk shows the mutation.
        #expect(checked >= 15)
        #expect(failing >= checked - 3, "only \(failing) of \(checked) golden traces noticed the mutant")
    }
}

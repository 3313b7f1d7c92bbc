import Foundation
import Replay
import Testing
import TestSupport
import VFIOEngines
import VFIOModel

/// Every trace under traces/ against its expected results.
@Suite struct GoldenTraceTests {
    static let traces = Paths.goldenTraces().map(\.path)

    static func expected(_ trace: String) throws -> [String] {
        try Golden.Results.suffixes.map { try String(contentsOfFile: Golden.expectedBase(for: trace) + $0, encoding: .utf8) }
    }

    @Test("The golden suite is there: traces of every kind, each with expected results")
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
        for t in Self.traces { #expect(throws: Never.self) { try Self.expected(t) } }
        let readme = try String(contentsOf: Paths.traces.appendingPathComponent("README.md"), encoding: .utf8)
        for n in names { #expect(readme.contains(n), "traces/README.md does not list \(n)") }
    }

    @Test("A replay gives exactly the expected results", arguments: traces)
    func matchesExpected(trace: String) throws {
        let got = try Golden.render(trace: trace).files
        for (file, (e, g)) in zip(Golden.Results.suffixes, zip(try Self.expected(trace), got)) {
            if let diff = Golden.difference(expected: e, got: g) {
                Issue.record("\(URL(fileURLWithPath: trace).lastPathComponent)\(file) differs at \(diff)")
            }
        }
    }

    @Test("The clean traces stay clean between v4.16 and v4.17-rc1")
    func cleanStaysClean() throws {
        for t in Self.traces where t.contains("/clean-") {
            let json = try Self.expected(t)[0]
            #expect(Golden.counts(json) == (0, 0), "\(t)")
        }
    }

    /// v4.16 with its run one page short: the contiguity walk off by one, on purpose.
    struct OffByOne: PinEngine {
        let base = V4_16()
        var name: String { "v4.16" }
        var aliases: [String] { [] }
        var summary: String { "v4.16 with the walk stopping one page early" }
        func vaddr_get_pfn(_ k: VFIOModel.Host, _ mm: MM, _ vaddr: VAddr, _ prot: Prot, _ pfn: inout PFN) -> Int {
            base.vaddr_get_pfn(k, mm, vaddr, prot, &pfn)
        }
        func vfio_pin_pages_remote(
            _ k: VFIOModel.Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ lock_cap: Bool, _ limit: UInt64
        ) -> Int {
            base.vfio_pin_pages_remote(k, dma, vaddr, npage > 1 ? npage - 1 : npage, &pfn_base, lock_cap, limit)
        }
    }

    @Test("The suite is not vacuous: a mutated engine fails it")
    func mutantFails() throws {
        let engines: [any PinEngine] = [OffByOne(), RFCv1(), V4_17_rc1()]
        var failing = 0
        var checked = 0
        // The hand-written traces are enough to show it, and quick.
        for t in Self.traces where t.hasSuffix(".txt") {
            checked += 1
            if try Golden.render(trace: t, engines: engines).files != Self.expected(t) { failing += 1 }
        }
        // Every trace that maps more than one page in one chunk shows the mutation.
        #expect(checked >= 15)
        #expect(failing >= checked - 3, "only \(failing) of \(checked) golden traces noticed the mutant")
    }
}

import Foundation
import Reduce
import Replay
import TestSupport
import Testing
import TraceFormat
import VFIOEngines
import VFIOModel

@Suite struct ReduceTests {
    static func statements(_ path: String) throws -> [Statement] {
        let r = try TraceReader(path: path)
        var out: [Statement] = []
        while let s = try r.next() { out.append(s) }
        return out
    }

    static let seedPair: [any Engine] = [V4_16(), V4_17_rc1()]

    @Test("Findings parse and print")
    func findings() {
        #expect(Finding("any") == .any)
        #expect(Finding("mapping") == .divergence(.mapping, engine: nil))
        #expect(Finding("violation:leak@v6.18") == .violation(.leak, engine: "v6.18"))
        #expect(Finding("violation:leak@v6.18")?.description == "violation:leak@v6.18")
        #expect(Finding("violation:bogus") == nil)
        #expect(Finding("mapping@") == nil)
    }

    @Test("The zero-page ROM underflow of gpu-16g-bar reduces to the same five statements, every time")
    func gpuBootUnderflow() throws {
        let input = try Self.statements(Paths.traces.appendingPathComponent("gpu-16g-bar.vptr").path)
        let keep = Finding.violation(.refcountUnderflow, engine: "v4.17-rc1")
        for jobs in [1, 3] {
            let reduced = Reducer(engines: Self.seedPair, keep: keep, jobs: jobs).reduce(input)
            #expect(
                reduced.map(\.canonicalText) == [
                    "pfns reserved 0x1000 6144", "zero_page 0x27e0", "pfns ram 0x2800 1", "vma 0x7e8000100000 0x7e8000140000 rw-",
                    "map 0xfffc0000 0x7e8000100000 0x40000 r",
                ])
        }
    }

    @Test("A reproducer is 1-minimal: dropping any one statement loses the finding or the trace")
    func oneMinimal() throws {
        let input = try Self.statements(Paths.traces.appendingPathComponent("seed-gpu-boot.txt").path)
        let reducer = Reducer(engines: Self.seedPair, keep: .divergence(.mapping, engine: nil), jobs: 2)
        let reduced = reducer.reduce(input)
        #expect(
            reduced.map(\.canonicalText) == [
                "pfns reserved 0x1000 1", "zero_page 0x1000", "vma 0x7f0010100000 0x7f0010120000 rw-",
                "map 0xe0000 0x7f0010100000 0x2000 r",
            ])
        #expect(reducer.shows(reduced))
        for i in reduced.indices {
            var fewer = reduced
            fewer.remove(at: i)
            #expect(!reducer.shows(fewer), "still shows without statement \(i)")
        }
    }

    @Test("reduce on the command line: the default is the first finding; a header says where it came from")
    func cli() throws {
        let r = try CLI.run(["reduce", "traces/seed-gpu-boot.txt", "--engines", "old,patched"])
        #expect(r.status == 0)
        #expect(
            r.stdout == """
                # pinreplay reduce: mapping on v4.16,v4.17-rc1
                # from traces/seed-gpu-boot.txt: 25 statements, reduced to 4
                vptr-text 1
                pfns reserved 0x1000 1
                zero_page 0x1000
                vma 0x7f0010100000 0x7f0010120000 rw-
                map 0xe0000 0x7f0010100000 0x2000 r

                """)
        let clean = try CLI.run(["reduce", "traces/memlock-boundary.txt", "--engines", "v4.16,fixed"])
        #expect(clean.status == 1)
        #expect(clean.stderr == "pinreplay: traces/memlock-boundary.txt: nothing to reduce: the replay shows no divergence or violation\n")
        let notShown = try CLI.run(["reduce", "traces/seed-gpu-boot.txt", "--engines", "old,patched", "--keep", "violation:leak@v4.16"])
        #expect(notShown.status == 1)
        #expect(notShown.stderr == "pinreplay: traces/seed-gpu-boot.txt: the replay does not show violation:leak@v4.16\n")
        let bad = try CLI.run(["reduce", "traces/seed-gpu-boot.txt", "--engines", "old,patched", "--keep", "violation:oops"])
        #expect(bad.status == 2)
        #expect(bad.stderr.hasPrefix("pinreplay: --keep must be any, a divergence kind or violation:KIND"))
        let other = try CLI.run(["reduce", "traces/seed-gpu-boot.txt", "--engines", "old,patched", "--keep", "mapping@v6.18"])
        #expect(other.status == 2)
        #expect(other.stderr == "pinreplay: --keep names engine 'v6.18', which --engines does not replay\n")
    }

    @Test("fuzz proves fixed against v4.16: 2,000 swarm traces, nothing found")
    func fixedAgainstV416() {
        let fuzzer = Fuzzer(engines: [V4_16(), Fixed()], seed: 7, jobs: 2)
        var found: [Fuzzer.Found] = []
        for i in 0..<2000 { fuzzer.run(index: UInt64(i), into: &found) }
        #expect(found.map(\.finding.description) == [])
    }

    @Test(
        "fuzz finds the seed's bug classes in v4.17-rc1: zero-page run (underflow), past-the-VMA run (foreign pfn), rsvd mismatch (accounting)"
    )
    func seedBugClasses() {
        let fuzzer = Fuzzer(engines: Self.seedPair, seed: 1, jobs: 2)
        var found: [Fuzzer.Found] = []
        for i in 0..<1000 { fuzzer.run(index: UInt64(i), into: &found) }
        let kinds = Set(found.map(\.finding.description))
        for k in ["violation:refcount-underflow@v4.17-rc1", "violation:foreign-pfn@v4.17-rc1", "accounting", "mapping"] {
            #expect(kinds.contains(k), "\(k) not found")
        }
        // Each reproducer shows what it was kept for.
        for f in found {
            #expect(Reducer(engines: Self.seedPair, keep: f.finding, jobs: 1).shows(f.reproducer), "\(f.finding)")
        }
    }

    @Test("fuzz is deterministic: the same command writes the same files; exit 1 when it finds something")
    func fuzzCLI() throws {
        let dirs = [Paths.scratch(), Paths.scratch()]
        var listings: [[String: String]] = []
        for d in dirs {
            let r = try CLI.run(["fuzz", "--engines", "old,patched", "--seed", "1", "--count", "200", "--out", d.path])
            #expect(r.status == 1)
            #expect(r.stdout.hasPrefix("200 traces, seed 1, engines v4.16,v4.17-rc1: "))
            var files: [String: String] = [:]
            for n in try FileManager.default.contentsOfDirectory(atPath: d.path) {
                files[n] = try String(contentsOf: d.appendingPathComponent(n), encoding: .utf8)
            }
            listings.append(files)
        }
        #expect(!listings[0].isEmpty)
        #expect(listings[0] == listings[1])
        let none = try CLI.run(["fuzz", "--engines", "v4.16,fixed", "--seed", "1", "--count", "200"])
        #expect(none.status == 0)
        #expect(none.stdout == "200 traces, seed 1, engines v4.16,fixed: 0 kinds found\n")
        let bad = try CLI.run(["fuzz", "--engines", "v4.16", "--seed", "1"])
        #expect(bad.status == 2)
    }
}

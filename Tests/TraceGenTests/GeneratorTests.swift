import Foundation
import Replay
import TestSupport
import Testing
import TraceFormat
import TraceGen
import VFIOEngines
import VFIOModel

/// Generated boots: well formed, deterministic, seeded only where a seed should matter.
@Suite struct GeneratorTests {
    static func generate(_ c: GenConfig, to path: String, form: TraceForm = .binary) throws {
        var g = try BootGenerator(c)
        let w = try TraceWriter(path: path, form: form)
        try g.run { s throws(TraceError) in try w.write(s) }
        try w.finish()
    }

    static func statements(_ c: GenConfig) throws -> [Statement] {
        var out: [Statement] = []
        var g = try BootGenerator(c)
        try g.run { s throws(TraceError) in out.append(s) }
        return out
    }

    static func profile(_ name: String) throws -> GenConfig {
        try #require(Profile.named(name)).defaults
    }

    static let profiles = Profile.all.map(\.name)

    @Test("Every profile generates, dumps to text and replays without an error", arguments: profiles)
    func generatesAndReplays(name: String) throws {
        var c = try Self.profile(name)
        // Smaller guests keep the suite quick; the structure of the boot is the same.
        c.ram = c.backing == .hugetlb1g ? 2 << 30 : 256 << 20
        if name == "tight-memlock" { c.memlock = 128 << 20 }
        if c.requests > 0 { c.requests = 500 }
        let dir = Paths.scratch()
        let bin = dir.appendingPathComponent("\(name).vptr").path
        try Self.generate(c, to: bin)
        let reader = try TraceReader(path: bin)
        let events = try reader.verify()
        #expect(events > 20)
        let txt = dir.appendingPathComponent("\(name).txt").path
        let w = try TraceWriter(path: txt, form: .text)
        while let s = try reader.next() { try w.write(s) }
        try w.finish()
        var observer = NoObserver()
        let report = try Replayer(engines: Engines.all).replay(path: txt, observer: &observer)
        #expect(report.events == events)
        #expect(report.requests > 0)
        // v4.16 keeps every invariant on a QEMU boot.
        #expect(report.violations.filter { $0.engine == "v4.16" }.isEmpty)
    }

    @Test("The same seed gives the same bytes", arguments: profiles)
    func sameSeedSameBytes(name: String) throws {
        var c = try Self.profile(name)
        if c.requests > 0 { c.requests = 200 }
        let dir = Paths.scratch()
        let a = dir.appendingPathComponent("a.vptr")
        let b = dir.appendingPathComponent("b.vptr")
        try Self.generate(c, to: a.path)
        try Self.generate(c, to: b.path)
        #expect(try Data(contentsOf: a) == Data(contentsOf: b))
    }

    /// A statement with what a seed may change taken out: pool placement, host BAR addresses.
    static func structure(_ s: Statement) -> Statement? {
        switch s {
        case .pool: return nil
        case .vma(var v) where v.flags.contains(.pfnmap):
            v.pgoff = 0
            return .vma(v)
        default: return s
        }
    }

    @Test("Two seeds give different bytes and the same boot", arguments: ["gpu-16g-bar", "nic-sriov-4vf", "hugetlb-1g-64g", "intx-no-kvm"])
    func seedsChangePlacementOnly(name: String) throws {
        var c = try Self.profile(name)
        if c.requests > 0 { c.requests = 50 }
        let one = try Self.statements(c)
        c.seed = 2
        let two = try Self.statements(c)
        #expect(one != two)
        #expect(one.compactMap(Self.structure) == two.compactMap(Self.structure))
    }

    @Test("vIOMMU churn: a seed changes the request mix, not the phases")
    func viommuSeeds() throws {
        var c = try Self.profile("viommu-churn")
        c.requests = 300
        let one = try Self.statements(c)
        c.seed = 9
        let two = try Self.statements(c)
        #expect(one != two)
        let marks = { (s: [Statement]) in s.filter { if case .mark = $0 { true } else { false } } }
        #expect(marks(one) == marks(two))
        #expect(one.filter(\.isRequest).count == two.filter(\.isRequest).count)
    }

    @Test("The gpu-16g-bar trace is a few KiB")
    func gpuTraceIsSmall() throws {
        let path = Paths.scratch().appendingPathComponent("gpu.vptr").path
        try Self.generate(try Self.profile("gpu-16g-bar"), to: path)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size < 8 * 1024)
    }

    @Test("A 1 TiB hugetlb-1g guest generates, with memory that scales with extents")
    func terabyteGuest() throws {
        var c = try Self.profile("hugetlb-1g-64g")
        c.ram = 1 << 40
        let s = try Self.statements(c)
        #expect(s.count < 1000)
        let mapped = s.reduce(UInt64(0)) { if case let .map(_, _, size, access) = $1, access.contains(.write) { $0 + size } else { $0 } }
        #expect(mapped >= 1 << 40)
    }

    @Test("QEMU's boot: RAM once, ROMs read-only, BARs around the MSI-X page, PAM, sizing, shutdown")
    func gpuBootShape() throws {
        let s = try Self.statements(try Self.profile("gpu-16g-bar"))
        let maps = s.compactMap { st -> (UInt64, UInt64, Access)? in
            if case let .map(iova, _, size, access) = st { (iova, size, access) } else { nil }
        }
        // Realize: the flat view in address order.
        #expect(
            Array(maps.prefix(6)).map { [$0.0, $0.1] } == [
                [0, 0xA0000], [0xC0000, 0x20000], [0xE0000, 0x20000], [0x10_0000, 0x7FF0_0000],
                [0xFFFC_0000, 0x40000], [0x1_0000_0000, 0x3_8000_0000],
            ])
        #expect(maps.prefix(6).map(\.2.keyword) == ["rw", "r", "r", "rw", "r", "rw"])
        // BAR0 of 16 MiB is mapped around its MSI-X table page at 0xb90000.
        #expect(maps.contains { $0.0 == 0xC000_0000 && $0.1 == 0xB9_0000 })
        #expect(maps.contains { $0.0 == 0xC0B9_1000 && $0.1 == 0x46_F000 })
        // BAR1: 16 GiB, mapped by firmware and again after sizing.
        #expect(maps.filter { $0.1 == 16 << 30 }.count == 2)
        // Every unmap matches a live map exactly, and nothing is left at the end.
        var live: [UInt64: UInt64] = [:]
        for st in s {
            switch st {
            case let .map(iova, _, size, _):
                #expect(live[iova] == nil)
                live[iova] = size
            case let .unmap(iova, size):
                #expect(live.removeValue(forKey: iova) == size)
            default: break
            }
        }
        #expect(live.isEmpty)
        let marks = s.compactMap { if case .mark(let t) = $0 { String(t.string.prefix(while: { $0 != ":" })) } else { nil } }
        #expect(Set(marks).isSuperset(of: ["realize", "firmware", "BAR sizing", "OS probe", "shutdown"]))
    }

    @Test("gpu-16g-bar through old,patched: the BAR walk's cost and the zero-page ROM divergence")
    func gpuReplay() throws {
        let path = Paths.scratch().appendingPathComponent("gpu.vptr").path
        try Self.generate(try Self.profile("gpu-16g-bar"), to: path)
        var observer = NoObserver()
        let engines: [any Engine] = [V4_16(), V4_17_rc1()]
        let r = try Replayer(engines: engines).replay(path: path, observer: &observer)
        let old = r.summaries[0].counters
        let new = r.summaries[1].counters
        // Every BAR is mapped twice (firmware, then after sizing). v4.16 looks up the VMA for
        // each BAR page: BAR0 less its MSI-X page, BAR1, BAR3. v4.17-rc1 looks it up twice per
        // piece (4 pieces), and once per zero-page run of the three ROM maps.
        #expect(old.find_vma == 2 * (4095 + 4_194_304 + 8192))
        #expect(new.find_vma == 2 * 4 * 2 + 3)
        let saved = CostModel.estimate(old) - CostModel.estimate(new)
        #expect(saved > 700_000_000)
        // pc.rom, isa-bios and pc.bios: v4.17-rc1 maps zero_pfn + 1, ... where v4.16 maps the zero page.
        let mapping: [Divergence] = r.divergences.filter { $0.kind == DivergenceKind.mapping }
        let requests: [String] = mapping.map { $0.request }
        #expect(
            requests == [
                "map 0xc0000 0x7e8000000000 0x20000 r", "map 0xe0000 0x7e8000120000 0x20000 r",
                "map 0xfffc0000 0x7e8000100000 0x40000 r",
            ])
        // pc.rom's first ten pages hold option ROMs; the zero page starts at 0xca000, and the
        // run v4.17-rc1 makes of it leaves the zero pfn at the next page.
        #expect(mapping[0].detail.hasPrefix("at iova 0xcb000: v4.16 maps pfn 0x27e0, v4.17-rc1 maps pfn 0x27e1"))
        let kinds = Set(r.violations.filter { $0.engine == "v4.17-rc1" }.map { $0.violation.kind.rawValue })
        #expect(kinds == ["foreign-pfn", "refcount-underflow", "leak"])
        #expect(r.violations.allSatisfy { $0.engine == "v4.17-rc1" })
    }

    @Test(
        "Impossible parameters are refused with one line",
        arguments: [
            ("ram", "--ram 16777217 is not page aligned"),
            ("bar", "--device gpu: bar1 size 3G is not a power of two of at least 4 KiB"),
            ("small", "--device nic: bar0 size 2K is not a power of two of at least 4 KiB"),
            ("huge", "--ram 4 TiB does not fit the host layout (at most about 2.8 TiB of guest RAM)"),
            ("hugepage", "--ram and --hotplug must be multiples of the 1 GiB huge page with --backing hugetlb-1g"),
        ])
    func badParameters(which: String, message: String) throws {
        var c = try Self.profile("gpu-16g-bar")
        do {
            switch which {
            case "ram": c.ram = (16 << 20) + 1
            case "bar": c.devices = [try DeviceSpec.parse("gpu:bar0=16M,bar1=3G")]
            case "small": c.devices = [try DeviceSpec.parse("nic:bar0=2K")]
            case "huge": c.ram = 4 << 40
            default:
                c.backing = .hugetlb1g
                c.ram = (16 << 30) + (2 << 20)
            }
            _ = try BootGenerator(c)
            Issue.record("no error for \(which)")
        } catch {
            #expect(error.message == message)
        }
    }

    @Test(
        "The host address space is laid out from the sizes: every profile at 4 GiB, 512 GiB, 513 GiB and 1 TiB maps only inside its VMAs, which never overlap",
        arguments: profiles)
    func layoutScales(name: String) throws {
        for ram: UInt64 in [4 << 30, 512 << 30, 513 << 30, 1 << 40] {
            var c = try Self.profile(name)
            c.ram = ram
            if c.requests > 0 { c.requests = 200 }
            let mm = MM()
            var problems: [String] = []
            var g = try BootGenerator(c)
            try g.run { s throws(TraceError) in
                switch s {
                case .vma(let v):
                    if mm.findVMAIntersection(v.start, v.end) != nil {
                        problems.append("vma \(v.start)-\(v.end) lands on a live VMA")
                    }
                    mm.mmap(VMA(start: v.start, end: v.end))
                case let .munmap(start, end):
                    mm.munmap(VAddr(start), VAddr(end))
                case let .map(_, vaddr, size, _):
                    if !mm.isCovered(VAddr(vaddr), npages: size >> 12) {
                        problems.append("map of \(hex(vaddr))+\(hex(size)) outside the VMAs")
                    }
                default: break
                }
            }
            #expect(problems.prefix(3) == [], "\(name) at \(ram >> 30) GiB")
        }
    }

    @Test("A 513 GiB hugetlb guest replays clean on v4.16 (its ROMs no longer land inside guest RAM)")
    func hugeGuestClean() throws {
        var c = try Self.profile("hugetlb-1g-64g")
        c.ram = 513 << 30
        let path = Paths.scratch().appendingPathComponent("h513.vptr").path
        try Self.generate(c, to: path)
        var none = NoObserver()
        let report = try Replayer(engines: [V4_16()]).replay(path: path, observer: &none)
        #expect(report.violations.map { "\($0.event) \($0.violation.kind)" } == [])
    }

    @Test("Guest RAM that cannot fit a 47-bit address space is refused with one line")
    func tooLarge() throws {
        var c = try Self.profile("gpu-16g-bar")
        c.ram = 200 << 40
        #expect(throws: GenError.self) { try BootGenerator(c) }
    }
}

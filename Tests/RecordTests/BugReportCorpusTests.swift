import Foundation
import Record
import Replay
import TestSupport
import Testing
import TraceFormat
import VFIOEngines
import VFIOModel

/// The public bug-report logs of traces/logs/ and their goldens traces/bugreport-*.txt
/// (tools/record-corpus.sh): each records from the log as published, the same way every time.
@Suite struct BugReportCorpusTests {
    /// Log name, and whether the log's own lspci listings place its BARs (as the script says).
    static let corpus: [(String, Bool)] = [
        ("qemu-devel-2020-01-13-pcie-bar-hole", true), ("launchpad-1879175-gvtd-3.1-vs-5.0", false),
        ("qemu-devel-2021-05-05-overlapping-regions", false), ("launchpad-1731347-sas2008-efault", false),
        ("ubuntu-forums-2016-10-10-i350-vf-efault", false),
    ]

    static func log(_ name: String) throws -> String {
        try String(contentsOf: Paths.traces.appendingPathComponent("logs/\(name).log"), encoding: .utf8)
    }

    /// What `record --qemu-trace LOG [--lspci LOG --guest-lspci LOG]` makes of a log.
    static func recorded(_ name: String, lspci: Bool) throws -> [Statement] {
        let text = try log(name)
        let file = "traces/logs/\(name).log"
        let listing = lspci ? try LspciBARs(text, file: file) : nil
        var src = RecordSources(mapsText: "", mapsName: file)
        src.inferred = try inferMaps(fromQEMUTrace: text, file: file, host: listing, guest: listing)
        src.qemuTrace = (text, file)
        var recorder = Recorder()
        return try Record.record(src, recorder: &recorder)
    }

    @Test("Every log records from itself alone to exactly its golden trace", arguments: corpus.map(\.0))
    func recordsToGolden(name: String) throws {
        let lspci = Self.corpus.first { $0.0 == name }?.1 ?? false
        let got = try Self.recorded(name, lspci: lspci).map(\.canonicalText)
        let golden = Paths.traces.appendingPathComponent("bugreport-\(name).txt").path
        var stored: [String] = []
        let reader = try TraceReader(path: golden)
        while let s = try reader.next() { stored.append(s.canonicalText) }
        #expect(got == stored)
    }

    @Test("No map of any corpus log fails for want of simulated memory, on any engine")
    func noENOMEM() throws {
        struct Rets: ReplayObserver {
            var enomem: [String] = []
            mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
                for (e, o) in zip(engines, outcomes) where o.ret == -ENOMEM { enomem.append("\(e) event \(event)") }
            }
        }
        for (name, lspci) in Self.corpus {
            var o = Rets()
            _ = try Replayer(engines: Engines.all).replay(statements: try Self.recorded(name, lspci: lspci), name: name, observer: &o)
            #expect(o.enomem.isEmpty, "\(name): \(o.enomem.prefix(3))")
        }
    }

    @Test("The 2020 BAR-hole report: every type1 engine reproduces the host's five iommu_map calls, the MSI-X hole included")
    func hostIOMMUTrace() throws {
        let name = "qemu-devel-2020-01-13-pcie-bar-hole"
        let host = try HostIOMMUTrace(try Self.log(name), file: "log")
        #expect(
            host.maps == [
                .init(iova: 0xF800_0000, paddr: 0xFA00_0000, size: 0x6000), .init(iova: 0xF800_7000, paddr: 0xFA00_7000, size: 0xFF_9000),
                .init(iova: 0xFA00_0000, paddr: 0xFB00_1000, size: 0x1000), .init(iova: 0xFA00_1000, paddr: 0xFB00_0000, size: 0x1000),
                .init(iova: 0xF900_0000, paddr: 0xF900_0000, size: 0x100_0000),
            ])
        var replayer = Replayer(engines: Engines.all)
        replayer.hostIOMMU = host
        var observer = NoObserver()
        let report = try replayer.replay(statements: try Self.recorded(name, lspci: true), name: name, observer: &observer)
        let matches = try #require(report.hostIOMMU)
        for m in matches {
            if m.engine.hasPrefix("iommufd") {
                #expect(m.matched == 0 && m.firstDifference?.contains("fails -EFAULT") == true, "\(m.summary)")
            } else {
                #expect(m.summary == "\(m.engine) matches 5 of 5 host iommu_map calls")
            }
        }
        // Without the lspci listings the BARs stay memory: no engine reproduces the host.
        var bare = Replayer(engines: [V4_16()])
        bare.hostIOMMU = host
        let r = try bare.replay(statements: try Self.recorded(name, lspci: false), name: name, observer: &observer)
        #expect(r.hostIOMMU?.first?.matched == 0)
    }
}

/// Where a bug report's BARs live: lspci listings and `--bar`.
@Suite struct BARPlacementTests {
    @Test("lspci listings as pasted: devices by their line or by the lspci -s command, Region lines with sizes")
    func lspci() throws {
        let text = try BugReportCorpusTests.log("qemu-devel-2020-01-13-pcie-bar-hole")
        let l = try LspciBARs(text, file: "mail")
        #expect(Set(l.devices.keys) == ["84:00.0", "06:00.0"])
        #expect(
            l.devices["84:00.0"] == [
                .init(bar: 0, address: 0xFA00_0000, size: 16 << 20), .init(bar: 2, address: 0xFB00_1000, size: 4096),
                .init(bar: 3, address: 0xFB00_0000, size: 4096), .init(bar: 4, address: 0xF900_0000, size: 16 << 20),
            ])
        #expect(
            throws: TraceError(file: "l", .line(2), .syntax, "lspci Region line: no [size=...]: '\tRegion 0: Memory at fa000000 (64-bit)'")
        ) {
            try LspciBARs("01:00.0 VGA compatible controller\n\tRegion 0: Memory at fa000000 (64-bit)\n", file: "l")
        }
    }

    @Test("--bar BDF:N=HOST[@GUEST] reads hex with or without 0x; anything else is refused")
    func barOption() {
        let parsed = BARLocation.parse("0000:84:00.0:0=0xfa000000@f8000000")
        #expect(parsed?.key == "84:00.0:0")
        #expect(parsed?.location == BARLocation(host: 0xFA00_0000, guest: 0xF800_0000))
        #expect(BARLocation.parse("84:00.0:4=f9000000")?.location == BARLocation(host: 0xF900_0000, guest: nil))
        for bad in ["84:00.0=fa000000", "84:00.0:x=fa000000", "84:00.0:0=zz", "84:00.0:0=1@2@3", "fa000000"] {
            #expect(BARLocation.parse(bad) == nil, "\(bad)")
        }
    }
}

extension BARPlacementTests {
    @Test("Without a guest listing, the log's own BAR config writes give the guest address (a 64-bit BAR's upper dword too)")
    func configWrites() throws {
        let log = """
            vfio_region_mmap Region 0000:01:00.0 BAR 0 mmaps[0] [0x0 - 0xffffff]
            vfio_region_mmap Region 0000:01:00.0 BAR 2 mmaps[0] [0x0 - 0xfff]
            vfio_pci_write_config  (0000:01:00.0, @0x10, 0xffffffff, len=0x4)
            vfio_pci_write_config  (0000:01:00.0, @0x10, 0xf8000000, len=0x4)
            vfio_pci_write_config  (0000:01:00.0, @0x14, 0x1, len=0x4)
            vfio_pci_write_config  (0000:01:00.0, @0x18, 0xfa000000, len=0x4)
            vfio_pci_write_config  (0000:01:00.0, @0x4, 0x7, len=0x2)
            vfio_listener_region_add_ram region_add [ram] 0x1f8000000 - 0x1f8ffffff [0x7f0000000000]
            vfio_listener_region_add_ram region_add [ram] 0xfa000000 - 0xfa000fff [0x7f0100000000]
            """
        let parsed = try QEMUTraceLog(log, file: "log") { _ in false }
        #expect(parsed.guestBARAddress("0000:01:00.0", 0) == 0x1_F800_0000)
        #expect(parsed.guestBARAddress("0000:01:00.0", 2) == 0xFA00_0000)
        let host = try LspciBARs(
            "01:00.0 Non-VGA\n\tRegion 0: Memory at 3800000000 (64-bit) [size=16M]\n\tRegion 2: Memory at c0000000 (32-bit) [size=4K]\n",
            file: "l")
        let (placed, unplaced) = placeBARs(parsed, host: host, guest: nil, given: [:])
        #expect(unplaced.isEmpty)
        #expect(
            placed.map { [$0.start, $0.end, $0.hostPhys] } == [
                [0x7F00_0000_0000, 0x7F00_0100_0000, 0x38_0000_0000], [0x7F01_0000_0000, 0x7F01_0000_1000, 0xC000_0000],
            ])
    }
}

import Foundation
import TestSupport
import Testing
import VFIOEngines

#if canImport(Glibc)
    import Glibc
#endif

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

    @Test("A QEMU trace log or a bpftrace capture without a single VFIO event exits 2 saying so")
    func emptyLogs() throws {
        let dir = Paths.scratch()
        let log = dir.appendingPathComponent("empty.log").path
        try "qemu-system-x86_64: some other event\n".write(toFile: log, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("x.vptr").path
        let q = try CLI.run(["record", "--maps", "Tests/Fixtures/qemu/maps-q35-256m.txt", "--qemu-trace", log, "-o", out])
        #expect(q.status == 2)
        #expect(
            q.stderr
                == "pinreplay: \(log): no vfio_listener_region_add/del or vfio_dma_map/unmap event: not a trace log of QEMU's VFIO listener, or tracing was off\n"
        )
        let b = try CLI.run(["record", "--maps", "Tests/Fixtures/qemu/maps-q35-256m.txt", "--bpftrace", log, "-o", out])
        #expect(b.status == 2)
        #expect(
            b.stderr
                == "pinreplay: \(log): no MAP_DMA or UNMAP_DMA line: not output of tools/capture/vfio-dma.bt, or the process made no request\n"
        )
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test("record --qemu-trace LOG alone: a log pasted from syslog and a mail records and replays with every map succeeding")
    func logAlone() throws {
        let dir = Paths.scratch()
        let out = dir.appendingPathComponent("bug.txt").path
        let r = try CLI.run(["record", "--qemu-trace", "Tests/Fixtures/qemu/pasted-syslog-flowed.log", "-o", out])
        #expect(r.status == 0)
        #expect(r.stderr.contains("pinreplay record: assumed: the address space is what the trace log's region_add host ranges cover"))
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(text.contains("vma 0x7f3a5bec0000 0x7f3bdbe00000 rw-\n"))
        #expect(text.contains("map 0x100000000 0x7f3b1be00000 0xc0000000 rw\n"))
        let j = try CLI.run(["replay", out, "--engines", "all", "--format", "jsonl"])
        let maps = j.stdout.split(separator: "\n").filter { $0.contains("\"op\":\"map\"") }
        #expect(maps.count == 3 * Engines.all.count)
        #expect(maps.allSatisfy { $0.contains("\"ret\":0,") })
        // Without the log, there is still nothing to record from.
        let none = try CLI.run(["record", "-o", out])
        #expect(none.status == 2)
        #expect(none.stderr == "pinreplay: give either --pid PID or --maps FILE (or a --qemu-trace log alone)\n")
    }

    @Test("A human-monitor socket given as --qemu-monitor is named as not QMP")
    func humanMonitor() throws {
        let dir = Paths.scratch()
        let path = dir.appendingPathComponent("hmp.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        _ = withUnsafeMutableBytes(of: &addr.sun_path) { buf in path.utf8CString.withUnsafeBytes { buf.copyMemory(from: $0) } }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0 && listen(fd, 1) == 0)
        let server = Thread {
            let c = accept(fd, nil, nil)
            let greeting = "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "
            _ = greeting.withCString { write(c, $0, strlen($0)) }
            usleep(500_000)
            close(c)
        }
        server.start()
        let r = try CLI.run(["record", "--qemu-monitor", path, "--pid", "\(getpid())", "-o", dir.appendingPathComponent("x.vptr").path])
        #expect(r.status == 2)
        #expect(
            r.stderr
                == "pinreplay: \(path): not a QMP socket (it said 'QEMU 7.2.0 monitor - type 'help' for more information'); start QEMU with -qmp unix:PATH,server=on,wait=off\n"
        )
    }
}

/// A bug report end to end: record from the mail alone, replay against the host's iommu trace.
@Suite struct BugReportCLITests {
    @Test("record --lspci/--guest-lspci from a mail, replay --iommu-trace: text and JSON name each engine's match")
    func mailToReport() throws {
        let dir = Paths.scratch()
        let mail = "traces/logs/qemu-devel-2020-01-13-pcie-bar-hole.log"
        let out = dir.appendingPathComponent("bug.txt").path
        let r = try CLI.run(["record", "--qemu-trace", mail, "--lspci", mail, "--guest-lspci", mail, "-o", out])
        #expect(r.status == 0)
        let j = try CLI.run(["replay", out, "--engines", "v4.16,v6.18", "--format", "json", "--iommu-trace", mail])
        #expect(j.status == 0)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        let trace = try #require((doc["traces"] as? [[String: Any]])?.first)
        let host = try #require(trace["host_iommu"] as? [[String: Any]])
        #expect(host.map { $0["matched"] as? Int } == [5, 5])
        #expect(host.map { $0["host_calls"] as? Int } == [5, 5])
        let t = try CLI.run(["replay", out, "--engines", "v6.18", "--iommu-trace", mail])
        #expect(t.stdout.contains("host iommu trace: v6.18 matches 5 of 5 host iommu_map calls\n"))
        // One trace only, and a file of iommu events.
        let two = try CLI.run(["replay", out, out, "--iommu-trace", mail])
        #expect(two.status == 2 && two.stderr == "pinreplay: --iommu-trace goes with one trace\n")
        let none = try CLI.run(["replay", out, "--iommu-trace", "traces/logs/qemu-devel-2021-05-05-overlapping-regions.log"])
        #expect(none.status == 2)
        #expect(none.stderr.contains("no 'map: IOMMU: iova=... paddr=... size=...' event"))
        let misuse = try CLI.run(["record", "--maps", "Tests/Fixtures/qemu/maps-q35-256m.txt", "--lspci", mail, "-o", out])
        #expect(misuse.status == 2)
        #expect(misuse.stderr == "pinreplay: --lspci, --guest-lspci and --bar place BARs for a --qemu-trace log recorded alone\n")
    }
}

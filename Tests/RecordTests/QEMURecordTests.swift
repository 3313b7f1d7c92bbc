import Foundation
import Record
import Replay
import TestSupport
import Testing
import TraceFormat
import VFIOEngines
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// A real QEMU: started paused under TCG with 256 MiB of RAM and a QMP socket, recorded through
/// its monitor and /proc, replayed, stopped by its pid.
@Suite struct QEMURecordTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"
    /// Whether QEMU is installed: the live tests show as skipped, not passed, without it.
    static let haveQEMU = FileManager.default.isExecutableFile(atPath: qemu)

    /// Starts QEMU and waits (at most ten seconds) for its QMP socket; nil with the reason
    /// printed when it cannot start.
    static func startQEMU(in dir: URL) -> (process: Process, socket: String)? {
        guard FileManager.default.isExecutableFile(atPath: qemu) else {
            print("QEMU recording test skipped: \(qemu) is not installed (tools/ensure-deps.sh --test installs it)")
            return nil
        }
        let socket = dir.appendingPathComponent("qmp.sock").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: qemu)
        p.arguments = [
            "-S", "-machine", "q35", "-accel", "tcg", "-m", "256M", "-nographic", "-nodefaults", "-display", "none",
            "-qmp", "unix:\(socket),server=on,wait=off",
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch {
            print("QEMU recording test skipped: QEMU does not start: \(error)")
            return nil
        }
        for _ in 0..<200 {
            if FileManager.default.fileExists(atPath: socket) { return (p, socket) }
            if !p.isRunning { break }
            usleep(50_000)
        }
        print("QEMU recording test skipped: QEMU gave no QMP socket within 10 s (status \(p.isRunning ? "running" : "exited"))")
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return nil
    }

    /// Writes the statements as a binary trace and replays it through every engine.
    static func replay(_ statements: [Statement], in dir: URL) throws -> TraceReport {
        let path = dir.appendingPathComponent("qemu.vptr").path
        let w = try TraceWriter(path: path, form: .binary)
        for s in statements { try w.write(s) }
        try w.finish()
        var observer = NoObserver()
        return try Replayer(engines: Engines.all).replay(path: path, observer: &observer)
    }

    @Test(
        "A paused QEMU's flat view becomes map requests at the right addresses, read-only for ROM",
        .enabled(if: haveQEMU, "qemu-system-x86_64 is not installed (tools/ensure-deps.sh --test installs it)"))
    func recordLiveQEMU() throws {
        let dir = Paths.scratch()
        guard let (qemu, socket) = Self.startQEMU(in: dir) else { return }
        defer {
            kill(qemu.processIdentifier, SIGKILL)
            qemu.waitUntilExit()
        }
        var recorder = Recorder()
        let statements = try recordQEMU(socket: socket, pid: qemu.processIdentifier, recorder: &recorder)
        let maps = statements.compactMap { s -> (iova: UInt64, vaddr: UInt64, size: UInt64, access: String)? in
            if case let .map(iova, vaddr, size, access) = s { (iova, vaddr, size, access.keyword) } else { nil }
        }
        // q35, 256 MiB, no VGA: RAM below 0xc0000, pc.rom, isa-bios, RAM from 1 MiB, pc.bios.
        #expect(
            maps.map { [$0.iova, $0.size] } == [
                [0, 0xC_0000], [0xC_0000, 0x2_0000], [0xE_0000, 0x2_0000], [0x10_0000, 0xFF0_0000], [0xFFFC_0000, 0x4_0000],
            ])
        #expect(maps.map(\.access) == ["rw", "r", "r", "rw", "r"])
        // RAM lies in one mapping of QEMU at least 256 MiB long, RAM from 1 MiB at its offset.
        let vmas = statements.compactMap { s -> VMASpec? in if case .vma(let v) = s { v } else { nil } }
        let ram = try #require(vmas.first { $0.start.rawValue <= maps[0].vaddr && maps[0].vaddr < $0.end.rawValue })
        #expect(ram.end - ram.start >= 256 << 20)
        #expect(maps[3].vaddr == maps[0].vaddr + 0x10_0000)
        for m in maps {
            #expect(
                vmas.contains { $0.start.rawValue <= m.vaddr && m.vaddr + m.size <= $0.end.rawValue },
                "map at 0x\(String(m.iova, radix: 16))")
        }
        // isa-bios is the last 128 KiB of pc.bios.
        #expect(maps[2].vaddr == maps[4].vaddr + 0x2_0000)

        let report = try Self.replay(statements, in: dir)
        #expect(report.requests == 5)
        #expect(report.summaries.allSatisfy { $0.chunksMapped > 0 })
    }

    @Test(
        "Watching QEMU boot: memory-map and flat-view changes become the listener's unmaps and maps",
        .enabled(if: haveQEMU, "qemu-system-x86_64 is not installed (tools/ensure-deps.sh --test installs it)"))
    func watchLiveQEMU() throws {
        let dir = Paths.scratch()
        guard let (qemu, socket) = Self.startQEMU(in: dir) else { return }
        defer {
            kill(qemu.processIdentifier, SIGKILL)
            qemu.waitUntilExit()
        }
        var recorder = Recorder()
        // Resumed after the first look, SeaBIOS shadows itself through PAM within a second or so.
        let statements = try watchQEMU(
            socket: socket, pid: qemu.processIdentifier, seconds: 2, interval: 0.1, recorder: &recorder, resume: true)
        var live: [UInt64: UInt64] = [:]
        var unmaps = 0
        for s in statements {
            switch s {
            case let .map(iova, _, size, _):
                #expect(live[iova] == nil, "map at 0x\(String(iova, radix: 16)) over a live one")
                live[iova] = size
            case let .unmap(iova, size):
                #expect(live.removeValue(forKey: iova) == size, "unmap 0x\(String(iova, radix: 16)) matches no map")
                unmaps += 1
            default: break
            }
        }
        #expect(statements.filter(\.isRequest).count >= 5)
        let report = try Self.replay(statements, in: dir)
        #expect(report.requests == statements.filter(\.isRequest).count)
        print("watched QEMU: \(report.requests) requests, \(unmaps) unmaps")
    }

    @Test("Saved monitor output: parsed from committed samples; a section outside the maps is an error")
    func savedOutput() throws {
        let fixtures = Paths.fixtures.appendingPathComponent("qemu")
        let mtree = try String(contentsOf: fixtures.appendingPathComponent("mtree-q35-256m.txt"), encoding: .utf8)
        let view = try parseFlatView(mtree, source: "mtree")
        #expect(view.filter { $0.kind != .other("i/o") }.map(\.name) == ["pc.ram", "pc.rom", "pc.bios", "pc.ram", "pc.bios"])
        let hva = parseGpa2hvaLines(try String(contentsOf: fixtures.appendingPathComponent("gpa2hva-q35-256m.txt"), encoding: .utf8))
        #expect(hva.count == 5)
        var src = RecordSources(
            mapsText: try String(contentsOf: fixtures.appendingPathComponent("maps-q35-256m.txt"), encoding: .utf8), mapsName: "maps")
        src.flatView = (mtree, "mtree", { hva[$0] })
        var recorder = Recorder()
        let statements = try record(src, recorder: &recorder)
        #expect(statements.filter(\.isRequest).count == 5)
        src.mapsText = "7f0000000000-7f0000001000 rw-p 00000000 00:00 0\n"
        #expect(throws: TraceError.self) { try record(src, recorder: &recorder) }
        #expect(
            throws: TraceError(file: "x", .file, .syntax, "no flat view of the \"memory\" address space (is this 'info mtree -f' output?)")
        ) {
            try parseFlatView("hello\n", source: "x")
        }
    }
}

/// QEMU trace logs: the listener's requests in order.
@Suite struct QEMUTraceTests {
    static let fixtures = Paths.fixtures.appendingPathComponent("qemu")

    @Test("A committed trace log becomes maps and unmaps; ROM read-only from the flat view")
    func sampleLog() throws {
        let log = try String(contentsOf: Self.fixtures.appendingPathComponent("trace-vfio.log"), encoding: .utf8)
        let mtree = try String(contentsOf: Self.fixtures.appendingPathComponent("mtree-q35-256m.txt"), encoding: .utf8)
        let rom = try parseFlatView(mtree, source: "mtree").filter { $0.kind == .rom }
        let parsed = try QEMUTraceLog(log, file: "trace-vfio.log") { gpa in rom.contains { $0.start <= gpa && gpa <= $0.last } }
        let requests = parsed.statements.filter(\.isRequest)
        #expect(
            requests == [
                .map(iova: 0, vaddr: 0x7F4E_DFE0_0000, size: 0xC_0000, access: [.read, .write]),
                .map(iova: 0xC_0000, vaddr: 0x7F4F_3D60_0000, size: 0x2_0000, access: .read),
                .map(iova: 0xE_0000, vaddr: 0x7F4F_3D82_0000, size: 0x2_0000, access: .read),
                .map(iova: 0x10_0000, vaddr: 0x7F4E_DFF0_0000, size: 0xFF0_0000, access: [.read, .write]),
                .map(iova: 0xFFFC_0000, vaddr: 0x7F4F_3D80_0000, size: 0x4_0000, access: .read),
                .unmap(iova: 0xC_0000, size: 0x2_0000),
                .unmap(iova: 0xFFF0_0000, size: 0x1000),
            ])
        #expect(parsed.unplaceable == 1)
    }

    @Test("An event out of order, or a map outside the recorded mappings, is an error naming the file and line")
    func outOfOrder() throws {
        let log = "1@5.000002:vfio_listener_region_del region_del 0x0 - 0xfff\n1@5.000001:vfio_listener_region_del region_del 0x0 - 0xfff\n"
        #expect(
            throws: TraceError(
                file: "log", .line(2), .syntax,
                "vfio_listener_region_del: event out of order (its time is before the line above): '1@5.000001:vfio_listener_region_del region_del 0x0 - 0xfff'"
            )
        ) {
            try QEMUTraceLog(log, file: "log") { _ in false }
        }
        var src = RecordSources(mapsText: "7f0000000000-7f0000100000 rw-p 00000000 00:00 0\n", mapsName: "maps")
        src.qemuTrace = ("x\n1@1.0:vfio_listener_region_add_ram region_add [ram] 0x0 - 0xfff [0x500000]\n", "log")
        var recorder = Recorder()
        #expect(
            throws: TraceError(
                file: "log", .line(2), .impossible, "map of iova 0x0 at host address 0x500000 lies outside every recorded mapping")
        ) {
            try record(src, recorder: &recorder)
        }
    }

    @Test("A vfio event that does not parse names the file and line")
    func badEvent() {
        let log =
            "1@2.3:vfio_listener_region_add_ram region_add [ram] 0x0 - 0xfff [0x7f0000000000]\n1@2.4:vfio_listener_region_del region_del 0xzz - 0x1\n"
        #expect(
            throws: TraceError(
                file: "log", .line(2), .syntax,
                "vfio_listener_region_del: bad number '0xzz': '1@2.4:vfio_listener_region_del region_del 0xzz - 0x1'")
        ) {
            try QEMUTraceLog(log, file: "log") { _ in false }
        }
    }
}

/// Output of tools/capture/vfio-dma.bt.
@Suite struct BPFTraceTests {
    @Test("A committed capture becomes requests, each with the host's return code")
    func sample() throws {
        let text = try String(contentsOf: Paths.fixtures.appendingPathComponent("qemu/bpftrace-vfio-dma.log"), encoding: .utf8)
        let s = try parseBPFTrace(text, file: "dma.log").map(\.statement)
        #expect(
            s.filter(\.isRequest) == [
                .map(iova: 0, vaddr: 0x7F4E_DFE0_0000, size: 0xC_0000, access: [.read, .write]),
                .map(iova: 0xC_0000, vaddr: 0x7F4F_3D60_0000, size: 0x2_0000, access: .read),
                .map(iova: 0x10_0000, vaddr: 0x7F4E_DFF0_0000, size: 0xFF0_0000, access: [.read, .write]),
                .unmap(iova: 0xC_0000, size: 0x2_0000),
                .unmap(iova: 1 << 63, size: 1 << 63),
            ])
        #expect(s.last == .mark("the host returned -22"))
    }

    @Test("A line that does not parse names the file and line")
    func badLine() {
        #expect(
            throws: TraceError(
                file: "dma.log", .line(2), .syntax, "MAP line: no hex vaddr=: 'MAP pid=1 tid=1 iova=0x0 size=0x1000 flags=0x3 ret=0'")
        ) {
            try parseBPFTrace("Attaching 2 probes...\nMAP pid=1 tid=1 iova=0x0 size=0x1000 flags=0x3 ret=0\n", file: "dma.log")
        }
    }
}

/// Trace logs as people paste them into bug reports (issue: a bug report is a trace).
@Suite struct PastedLogTests {
    @Test("syslog prefixes in any locale, quoting, indentation and format=flowed wraps are read; unrelated lines skipped")
    func pasted() throws {
        let text = try String(contentsOf: Paths.fixtures.appendingPathComponent("qemu/pasted-syslog-flowed.log"), encoding: .utf8)
        let records = PastedLog.records(text)
        #expect(records.map(\.line) == [1, 2, 5, 6, 7])
        #expect(
            records[1].event == "vfio_listener_region_add_ram region_add [ram] 0x0 - 0x9ffff [0x7f3a5be00000]")
        #expect(records[1].time! == (1_578_907_267, 101_300))
        let parsed = try QEMUTraceLog(text, file: "log") { _ in false }
        #expect(
            parsed.statements.filter(\.isRequest) == [
                .map(iova: 0, vaddr: 0x7F3A_5BE0_0000, size: 0xA0000, access: [.read, .write]),
                .map(iova: 0xC0000, vaddr: 0x7F3A_5BEC_0000, size: 0xBFF4_0000, access: [.read, .write]),
                .map(iova: 0x1_0000_0000, vaddr: 0x7F3B_1BE0_0000, size: 0xC000_0000, access: [.read, .write]),
                .unmap(iova: 0xC0000, size: 0x20000),
            ])
        #expect(parsed.lines.suffix(4) == [2, 5, 6, 7])
    }

    @Test("A wrapped request whose continuation is lost is an error naming its first line")
    func cutRequest() {
        let log = "Jan 1 00:00:00 h qemu[1]: 1@1.5:vfio_listener_region_add_ram region_add [ram] 0x0 - 0x9ffff\nnext thing\n"
        #expect(
            throws: TraceError(
                file: "log", .line(1), .syntax,
                "vfio_listener_region_add_ram: missing field: 'Jan 1 00:00:00 h qemu[1]: 1@1.5:vfio_listener_region_add_ram region_add [ram] 0x0 - 0x9ffff'"
            )
        ) {
            try QEMUTraceLog(log, file: "log") { _ in false }
        }
    }

    @Test("The log alone is enough: region_add host ranges become merged anonymous VMAs, the pool holds them all")
    func inferred() throws {
        let text = try String(contentsOf: Paths.fixtures.appendingPathComponent("qemu/pasted-syslog-flowed.log"), encoding: .utf8)
        let maps = try inferMaps(fromQEMUTrace: text, file: "log")
        #expect(maps.entries.map { [$0.start, $0.end] } == [[0x7F3A_5BE0_0000, 0x7F3A_5BEA_0000], [0x7F3A_5BEC_0000, 0x7F3B_DBE0_0000]])
        var src = RecordSources(mapsText: "", mapsName: "log")
        src.inferred = maps
        src.qemuTrace = (text, "log")
        var recorder = Recorder()
        let out = try record(src, recorder: &recorder)
        // 0xa0 + 0x7ff40 pages of mappings: more than the 1 GiB floor.
        #expect(out.contains(.pool(start: 0x10_0000, count: 0xA0 + 0x17_FF40)))
        #expect(out.contains(.mark("inferred: host 0x7f3a5bec0000-0x7f3bdbe00000 is anonymous read-write memory (region_add ranges)")))
        // Replayed, every map succeeds on every engine: nothing fails for want of memory.
        struct MapRets: ReplayObserver {
            var rets: [Int] = []
            mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
                for o in outcomes { if case .map(let ret, _, _) = o { rets.append(ret) } }
            }
        }
        var observer = MapRets()
        _ = try Replayer(engines: Engines.all).replay(statements: out, name: "log", observer: &observer)
        #expect(observer.rets == Array(repeating: 0, count: 3 * Engines.all.count))
    }
}

/// QEMU's `-object iommufd` backend: its trace events and the IOAS ioctls of a bpftrace capture.
@Suite struct IOMMUFDRecordTests {
    @Test("iommufd_backend_map_dma / unmap_dma trace events become maps and unmaps (readonly=1 a read map)")
    func traceEvents() throws {
        let text = try String(contentsOf: Paths.fixtures.appendingPathComponent("qemu/trace-iommufd.log"), encoding: .utf8)
        let parsed = try QEMUTraceLog(text, file: "log") { _ in false }
        #expect(
            parsed.statements == [
                .map(iova: 0, vaddr: 0x7F4E_DFE0_0000, size: 0xA0000, access: [.read, .write]),
                .map(iova: 0xC0000, vaddr: 0x7F4F_3D60_0000, size: 0x20000, access: .read),
                .map(iova: 0x10_0000, vaddr: 0x7F4E_DFF0_0000, size: 0xFF0_0000, access: [.read, .write]),
                .map(iova: 0xFE00_0000, vaddr: 0x7F00_0000_0000, size: 0x100_0000, access: [.read, .write]),
                .unmap(iova: 0xFE00_0000, size: 0x100_0000),
                .unmap(iova: 0xC0000, size: 0x20000),
            ])
        #expect(parsed.lines == [2, 3, 4, 5, 6, 7])
        let cut = "1@1.0:iommufd_backend_map_dma  iommufd=3 ioas=2 iova=0x0 size=0x1000 readonly=0 (0)\n"
        #expect(
            throws: TraceError(
                file: "log", .line(1), .syntax,
                "iommufd_backend_map_dma: missing field addr=: '1@1.0:iommufd_backend_map_dma  iommufd=3 ioas=2 iova=0x0 size=0x1000 readonly=0 (0)'"
            )
        ) {
            try QEMUTraceLog(cut, file: "log") { _ in false }
        }
    }

    @Test("IOAS_MAP / IOAS_UNMAP capture lines become requests; READABLE and WRITEABLE give the access; no FIXED_IOVA is an error")
    func capture() throws {
        let text = """
            Attaching 4 probes...
            IOAS_MAP pid=7 tid=7 iova=0x0 vaddr=0x7f0000000000 size=0x200000 flags=0x7 ret=0
            IOAS_MAP pid=7 tid=7 iova=0xc0000 vaddr=0x7f0000400000 size=0x20000 flags=0x5 ret=0
            IOAS_UNMAP pid=7 tid=8 iova=0xc0000 size=0x20000 ret=0
            """
        let s = try parseBPFTrace(text, file: "dma.log").map(\.statement)
        #expect(
            s == [
                .map(iova: 0, vaddr: 0x7F00_0000_0000, size: 0x20_0000, access: [.read, .write]), .mark("the host returned 0"),
                .map(iova: 0xC0000, vaddr: 0x7F00_0040_0000, size: 0x20000, access: .read), .mark("the host returned 0"),
                .unmap(iova: 0xC0000, size: 0x20000), .mark("the host returned 0"),
            ])
        #expect(
            throws: TraceError(
                file: "dma.log", .line(1), .syntax,
                "IOAS_MAP line: no IOMMU_IOAS_MAP_FIXED_IOVA: the kernel chose the iova, which the line does not carry: 'IOAS_MAP pid=7 tid=7 iova=0x0 vaddr=0x1000 size=0x1000 flags=0x6 ret=0'"
            )
        ) {
            try parseBPFTrace("IOAS_MAP pid=7 tid=7 iova=0x0 vaddr=0x1000 size=0x1000 flags=0x6 ret=0\n", file: "dma.log")
        }
    }

    @Test("An iommufd trace log alone records and replays on the iommufd engines; a BAR the log does not place stays RAM")
    func logAloneThroughIOMMUFD() throws {
        let text = try String(contentsOf: Paths.fixtures.appendingPathComponent("qemu/trace-iommufd.log"), encoding: .utf8)
        var src = RecordSources(mapsText: "", mapsName: "log")
        src.inferred = try inferMaps(fromQEMUTrace: text, file: "log")
        src.qemuTrace = (text, "log")
        var recorder = Recorder()
        let out = try record(src, recorder: &recorder)
        struct Rets: ReplayObserver {
            var rets: [[Int]] = []
            mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) { rets.append(outcomes.map(\.ret)) }
        }
        var observer = Rets()
        let engines = ["iommufd", "iommufd-compat"].compactMap(Engines.named)
        _ = try Replayer(engines: engines).replay(statements: out, name: "log", observer: &observer)
        // Inferred from the log alone, the range the host refused with -EFAULT (a BAR) is
        // anonymous memory here, so it maps: without lspci or --maps nothing says it is a BAR.
        #expect(observer.rets.map { $0[0] } == [0, 0, 0, 0, 0, 0])
    }
}

extension PastedLogTests {
    @Test("A line that is not a request and does not read is named in a mark and skipped")
    func unreadableNonRequest() throws {
        let log = "vfio_region_mmap Region 0000:01:00.0 BAR 0 mmaps[0] [0x0 -\nvfio_listener_region_del region_del 0x0 - 0xfff\n"
        let parsed = try QEMUTraceLog(log, file: "log") { _ in false }
        #expect(
            parsed.statements == [
                .mark("line 1: vfio_region_mmap not read, skipped: vfio_region_mmap Region 0000:01:00.0 BAR 0 mmaps[0] [0x0 -"),
                .unmap(iova: 0, size: 0x1000),
            ])
        #expect(parsed.barMmaps.isEmpty)
    }
}

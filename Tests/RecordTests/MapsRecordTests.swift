import Foundation
import Record
import Replay
import Testing
import TestSupport
import TraceFormat
import VFIOEngines

#if canImport(Glibc)
    import Glibc
#endif

/// Traces from /proc: this test process's own memory map and pagemap.
@Suite struct MapsRecordTests {
    @Test("The test process's own maps and pagemap become a trace that dumps, verifies and replays")
    func selfRecording() throws {
        let maps = try parseMaps(try String(contentsOfFile: "/proc/self/maps", encoding: .utf8), file: "/proc/self/maps")
        #expect(maps.count > 5)
        let fd = open("/proc/self/pagemap", O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        var recorder = Recorder()
        let statements = recorder.snapshot(maps: maps, pagemapFD: fd, memlock: .some(8 << 20))
        let vmas = statements.filter { if case .vma = $0 { true } else { false } }
        let ptes = statements.filter { if case .pte = $0 { true } else { false } }
        #expect(vmas.count == maps.filter { $0.path != "[vsyscall]" }.count)
        #expect(!ptes.isEmpty, "a running process has present pages")
        let dir = Paths.scratch()
        let bin = dir.appendingPathComponent("self.vptr").path
        let w = try TraceWriter(path: bin, form: .binary)
        for s in statements { try w.write(s) }
        try w.finish()
        #expect(try TraceReader(path: bin).verify() == statements.count)
        var observer = NoObserver()
        let report = try Replayer(engines: Engines.all).replay(path: bin, observer: &observer)
        #expect(report.events == statements.count)
        #expect(report.isClean)
    }

    @Test("vfio BAR mmaps become linear pfnmaps at the offset column's address")
    func vfioBars() throws {
        let text = """
            7f0000000000-7f0400000000 rw-s 3800000000 00:0e 1234                       anon_inode:[vfio-device]
            7f1000000000-7f1040000000 rw-p 00000000 00:00 0
            7e0000000000-7e0040000000 rw-s 00000000 00:2f 99                         /dev/hugepages/qemu_back_mem.pc.ram.abc (deleted)
            """
        let maps = try parseMaps(text, file: "maps")
        var r = Recorder()
        let bar = r.vma(maps[0])
        let v = try #require(bar)
        #expect(v.flags == [.io, .pfnmap, .shared, .linear])
        #expect(v.pgoff == 0x380_0000)
        let anon = r.vma(maps[1])
        let huge = r.vma(maps[2])
        #expect(anon?.flags == [])
        #expect(huge?.hugetlb == 2 << 20)
        #expect(r.assumptions.count == 2)
    }

    @Test("A 6.x kernel's region offset (index << 40) hides the BAR address: one is laid out, aligned")
    func hiddenBarAddress() throws {
        let maps = try parseMaps("7f0000000000-7f0001000000 rw-s 20000000000 00:0e 1 /dev/vfio/devices/vfio0\n", file: "maps")
        var r = Recorder()
        let bar = r.vma(maps[0])
        let v = try #require(bar)
        #expect(v.flags.contains(.pfnmap))
        #expect(v.pgoff != 0x2000_0000)
        #expect((v.pgoff << 12) % (16 << 20) == 0)
        #expect(v.pgoff << 12 >= 0x380_0000_0000)
        #expect(r.assumptions.first?.contains("index << 40") == true)
    }

    @Test("A maps line that does not parse is an error naming the file and line")
    func badLine() {
        #expect(throws: TraceError(file: "maps", .line(2), "not a maps line (permissions): '7f1000000000-7f1040000000 rwzp 00000000 00:00 0'")) {
            try parseMaps("7f0000000000-7f0000001000 r--p 0 00:00 0\n7f1000000000-7f1040000000 rwzp 00000000 00:00 0\n", file: "maps")
        }
    }

    @Test("RLIMIT_MEMLOCK from /proc/PID/limits")
    func limits() {
        #expect(memlockLimit("Max locked memory         8388608              8388608              bytes") == .some(8388608))
        #expect(memlockLimit("Max locked memory         unlimited            unlimited            bytes") == .some(nil))
        #expect(memlockLimit("Max open files 1024 1024 files") == nil)
    }

    @Test("CAP_IPC_LOCK from /proc/PID/status (CapEff bit 14); a live process's recording says it")
    func capability() throws {
        #expect(capIpcLock(status: "Name:\tqemu\nCapEff:\t0000000000004000\n") == true)
        #expect(capIpcLock(status: "CapEff:\t000001ffffffbfff\n") == false)
        #expect(capIpcLock(status: "CapEff:\t0000000000000000\n") == false)
        #expect(capIpcLock(status: "Name:\tx\n") == nil)
        // This process: whatever it holds, the recording says the same.
        let status = try readProcText("/proc/self/status")
        let held = try #require(capIpcLock(status: status))
        var recorder = Recorder()
        let out = recorder.snapshot(maps: [], pagemapFD: nil, memlock: nil, capIpcLock: capIpcLock(pid: getpid()))
        #expect(out.contains(.capIpcLock(held)))
        var unknown = Recorder()
        let none = unknown.snapshot(maps: [], pagemapFD: nil, memlock: nil, capIpcLock: nil)
        #expect(!none.contains { if case .capIpcLock = $0 { true } else { false } })
        #expect(unknown.assumptions.contains("the process does not hold CAP_IPC_LOCK (its capabilities could not be read)"))
    }
}

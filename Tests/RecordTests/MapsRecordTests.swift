import Foundation
import Record
import Replay
import TestSupport
import Testing
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
        #expect(huge?.hugetlbSize == 2 << 20)
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
        #expect(
            throws: TraceError(
                file: "maps", .line(2), .syntax, "not a maps line (permissions): '7f1000000000-7f1040000000 rwzp 00000000 00:00 0'")
        ) {
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

    /// A sparse file holding `entries` as 8-byte little-endian words at `index * 8`, as
    /// /proc/PID/pagemap and /proc/kpageflags are laid out.
    static func sparse(_ path: String, _ entries: [(index: UInt64, word: UInt64)]) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        for (index, word) in entries {
            var w = word.littleEndian
            _ = pwrite(fd, &w, 8, off_t(index * 8))
        }
        return fd
    }

    @Test(
        "kpageflags tells the zero page and reserved frames from ram: read-faulted anonymous memory records on the zero page, read-only, and v4.17-rc1 maps its run"
    )
    func kpageflagsSample() throws {
        let dir = Paths.scratch()
        let maps = try parseMaps("00400000-00408000 rw-p 00000000 00:00 0 \n", file: "maps")
        let present: UInt64 = 1 << 63
        // Pages 0-1 written (ram 0x5000, 0x5001), 2-3 read-faulted (the zero page 0x3000), 4 a
        // reserved firmware frame; the rest never touched.
        let pagemap = Self.sparse(
            dir.appendingPathComponent("pagemap").path,
            [
                (0x400, present | 0x5000), (0x401, present | 0x5001), (0x402, present | 0x3000), (0x403, present | 0x3000),
                (0x404, present | 0x3001),
            ])
        let kpageflags = Self.sparse(
            dir.appendingPathComponent("kpageflags").path,
            [
                (0x3000, Recorder.KPF.zeroPage | Recorder.KPF.reserved), (0x3001, Recorder.KPF.reserved), (0x5000, 1 << 12),
                (0x5001, 1 << 12),
            ])
        defer {
            close(pagemap)
            close(kpageflags)
        }
        var recorder = Recorder()
        let out = recorder.snapshot(maps: maps, pagemapFD: pagemap, memlock: nil, capIpcLock: false, kpageflagsFD: kpageflags)
        #expect(
            out.filter { if case .mark = $0 { false } else { true } }.map(\.canonicalText) == [
                "page_shift 12", "cap_ipc_lock no", "pfns reserved 0x3000 1", "zero_page 0x3000", "pfns reserved 0x3000 2",
                "pfns ram 0x5000 2",
                "pool 0x40000 262144", "vma 0x400000 0x408000 rw-", "pte 0x400000 2 0x5000", "pte 0x402000 1 0x3000 ro",
                "pte 0x403000 1 0x3000 ro", "pte 0x404000 1 0x3001",
            ])
        #expect(!recorder.assumptions.contains { $0.contains("kpageflags could not be read") })
        // The ROM-like read-only map: v4.16 maps the zero page page by page, v4.17-rc1 its run.
        var none = NoObserver()
        let report = try Replayer(engines: [V4_16(), V4_17_rc1()])
            .replay(statements: out + [.map(iova: 0, vaddr: 0x402000, size: 0x2000, access: .read)], name: "sample", observer: &none)
        let d = try #require(report.divergences.first)
        #expect(d.kind == .mapping)
        #expect(d.outcomes[0] == .map(ret: 0, chunks: [chunk(0, 0x3000, 1), chunk(0x1000, 0x3000, 1)], lockedVM: 0))
        #expect(d.outcomes[1] == .map(ret: 0, chunks: [chunk(0, 0x3000, 2)], lockedVM: 0))
    }

    @Test(
        "Live: this process's read-faulted anonymous memory records on the zero page, read-only",
        .enabled(if: access("/proc/kpageflags", R_OK) == 0, "/proc/kpageflags is not readable here (it needs root)"))
    func kpageflagsLive() throws {
        let pages = 16
        guard let p = mmap(nil, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            Issue.record("mmap failed")
            return
        }
        defer { munmap(p, pages * 4096) }
        var sum = 0
        for i in 0..<pages { sum += Int(p.load(fromByteOffset: i * 4096, as: UInt8.self)) }
        #expect(sum == 0)
        let start = UInt64(UInt(bitPattern: p))
        let maps = try parseMaps(try readProcText("/proc/self/maps"), file: "/proc/self/maps")
        let pagemap = open("/proc/self/pagemap", O_RDONLY)
        let kpageflags = try #require(openKpageflags())
        defer {
            close(pagemap)
            close(kpageflags)
        }
        var recorder = Recorder()
        let out = recorder.snapshot(maps: maps, pagemapFD: pagemap, memlock: nil, capIpcLock: nil, kpageflagsFD: kpageflags)
        let zero = out.compactMap { if case .zeroPage(let z) = $0 { z } else { nil } }.first
        let ours = out.compactMap { s -> (UInt64, UInt64?, Bool)? in
            if case let .pte(v, _, pfn, ro, _) = s, v >= start, v < start + UInt64(pages * 4096) { (v, pfn, ro) } else { nil }
        }
        #expect(ours.count == pages)
        #expect(ours.allSatisfy { $0.1 == zero && $0.2 }, "every page on the zero page \(zero.map(hex) ?? "?"), read-only")
    }

    @Test("Several saved maps over time: each later snapshot becomes the munmaps, VMAs and pte changes since the one before")
    func snapshotSequence() throws {
        let dir = Paths.scratch()
        let present: UInt64 = 1 << 63
        let pm1 = Self.sparse(dir.appendingPathComponent("pm1").path, [(0x400, present | 0x5000), (0x401, present | 0x5001)])
        let pm2 = Self.sparse(dir.appendingPathComponent("pm2").path, [(0x400, present | 0x5000), (0x600, present | 0x6000)])
        defer {
            close(pm1)
            close(pm2)
        }
        var src = RecordSources(
            mapsText: "00400000-00408000 rw-p 00000000 00:00 0\n00500000-00501000 rw-p 00000000 00:00 0\n", mapsName: "maps.1")
        src.pagemapFD = pm1
        src.capIpcLock = false
        src.laterSnapshots = [("00400000-00408000 rw-p 00000000 00:00 0\n00600000-00602000 rw-p 00000000 00:00 0\n", "maps.2", pm2)]
        var recorder = Recorder()
        let out = try record(src, recorder: &recorder)
        let tail = out.drop { $0 != .mark("snapshot maps.2: what changed since the one before") }.map(\.canonicalText)
        #expect(
            tail == [
                "mark snapshot maps.2: what changed since the one before", "munmap 0x500000 0x501000", "vma 0x600000 0x602000 rw-",
                "pte 0x400000 2 none", "pfns ram 0x5000 1", "pfns ram 0x6000 1", "pte 0x400000 1 0x5000", "pte 0x600000 1 0x6000",
            ])
        // The sequence replays: the ballooned page is gone, the new buffer maps.
        var none = NoObserver()
        let report = try Replayer(engines: [V4_16()])
            .replay(
                statements: out + [.map(iova: 0, vaddr: 0x600000, size: 0x1000, access: [.read, .write])], name: "seq", observer: &none)
        #expect(report.violations.isEmpty && report.requests == 1)
    }
}

import Foundation
import TraceFormat
import TraceGen
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// Turns a process's memory map (and, where readable, its pagemap) into trace statements: the
/// snapshot a replay starts from. Every assumption becomes a `mark`.
public struct Recorder {
    /// Huge page size assumed for hugetlbfs mappings (`--hugetlb-size`).
    public var hugetlbSize: UInt64 = 2 << 20
    /// Seed for the pfns laid out when the kernel hides them.
    public var seed: UInt64 = 1
    /// Assumptions made, each written into the trace once as a mark.
    public private(set) var assumptions: [String] = []
    /// Where the next BAR with a hidden address goes.
    private var barCursor: UInt64 = 0

    /// A recorder with no snapshot taken yet.
    public init() {}

    /// The VMA statement a maps line stands for, or nil for mappings outside the process's
    /// VMAs (the vsyscall gate).
    public mutating func vma(_ e: MapsEntry) -> VMASpec? {
        if e.path == "[vsyscall]" { return nil }
        var v = VMASpec(start: e.start, end: e.end, read: e.read, write: e.write, exec: e.exec)
        v.name = TraceText(String(e.path.map { $0 == "#" ? "_" : $0 }))
        if e.shared { v.flags.insert(.shared) }
        if e.path == MapsEntry.inferredBAR {
            // Placed from a bug report's lspci (its mark says how): the host address is known.
            v.flags.formUnion([.io, .pfnmap, .linear])
            v.pgoff = e.offset >> 12
        } else if e.path == "anon_inode:[vfio-device]" || e.path.hasPrefix("/dev/vfio/devices/") {
            // A vfio-pci BAR mmap: VM_IO|VM_PFNMAP. On 4.16-era kernels the offset column is
            // the BAR's host physical address; later ones show the region index << 40 there,
            // which hides the address: then one is laid out, naturally aligned, from the seed.
            v.flags.formUnion([.io, .pfnmap, .linear])
            if e.offset >= 1 << 40 && e.offset & ((1 << 40) - 1) < e.end - e.start + (1 << 30) {
                let size = e.end - e.start
                let align = max(UInt64(1) << 20, size.nextPowerOfTwo)
                var rng = SplitMix64(seed: seed &+ e.start)
                barCursor = max(barCursor, 0x380_0000_0000) + (rng.below(64) + 1) * align
                barCursor = (barCursor + align - 1) / align * align
                v.pgoff = barCursor >> 12
                barCursor += size
                note(
                    "vfio device mmaps whose offset column hides the BAR address (index << 40) are placed at plausible host addresses from seed \(seed)"
                )
            } else {
                v.pgoff = e.offset >> 12
                note("vfio device mmaps are linear pfnmaps at the offset column's address (4.16-era kernels)")
            }
        } else if e.path == "[vvar]" || e.path == "[vvar_vclock]" {
            v.flags.formUnion([.io, .pfnmap])
        } else if e.path.hasPrefix("/dev/hugepages") || e.path.contains("/hugepages/") {
            if e.start % hugetlbSize == 0 && e.end % hugetlbSize == 0 {
                v.hugetlbSize = hugetlbSize
                note("hugetlbfs mappings use \(hugetlbSize >> 20) MiB pages")
            }
        }
        return v
    }

    /// Notes an assumption made outside the snapshot (it is printed, and written as a mark by
    /// whoever assembles the trace).
    public mutating func assume(_ a: String) { note(a) }

    private mutating func note(_ a: String) {
        if !assumptions.contains(a) { assumptions.append(a) }
    }

    /// Reads the present pages of `[start, end)` from a pagemap file: runs of (first vpn, pages,
    /// first pfn), pfn 0 where the kernel hides it.
    public static func presentRuns(pagemapFD fd: Int32, start: UInt64, end: UInt64) -> [(vpn: UInt64, count: UInt64, pfn: UInt64)] {
        var runs: [(vpn: UInt64, count: UInt64, pfn: UInt64)] = []
        let chunk: UInt64 = 4096
        var vpn = start >> 12
        let last = end >> 12
        var buf = [UInt64](repeating: 0, count: Int(chunk))
        while vpn < last {
            let n = min(chunk, last - vpn)
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(n) * 8, off_t(vpn * 8)) }
            guard got > 0 else { break }
            for i in 0..<(got / 8) {
                let e = buf[i]
                guard e >> 63 == 1 else { continue }  // not present
                let pfn = e & ((1 << 55) - 1)
                let v = vpn + UInt64(i)
                if let l = runs.last, l.vpn + l.count == v, (l.pfn == 0 && pfn == 0) || (l.pfn != 0 && l.pfn + l.count == pfn) {
                    runs[runs.count - 1].count += 1
                } else {
                    runs.append((v, 1, pfn))
                }
            }
            vpn += UInt64(got / 8)
        }
        return runs
    }

    /// The bits of `/proc/kpageflags` that decide a frame's class (include/uapi/linux/kernel-page-flags.h).
    public enum KPF {
        /// No struct page (`pfn_valid()` false): mmio.
        public static let nopage: UInt64 = 1 << 20
        /// The shared zero page.
        public static let zeroPage: UInt64 = 1 << 24
        /// PageReserved.
        public static let reserved: UInt64 = 1 << 32
    }

    /// The class of each of `count` frames from `pfn` from a kpageflags file, and whether it is
    /// the zero page: nil where the file has no entry.
    static func classes(kpageflagsFD fd: Int32, pfn: UInt64, count: UInt64) -> [(kind: PfnClass, zero: Bool)?] {
        var out: [(kind: PfnClass, zero: Bool)?] = []
        var buf = [UInt64](repeating: 0, count: Int(min(count, 4096)))
        var at = pfn
        while at < pfn + count {
            let n = min(UInt64(buf.count), pfn + count - at)
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Int(n) * 8, off_t(at * 8)) }
            guard got > 0 else { break }
            for f in buf[0..<(got / 8)] {
                let kind: PfnClass = f & (KPF.zeroPage | KPF.reserved) != 0 ? .reserved : f & KPF.nopage != 0 ? .mmio : .ram
                out.append((kind, f & KPF.zeroPage != 0))
            }
            at += UInt64(got / 8)
        }
        out += [(kind: PfnClass, zero: Bool)?](repeating: nil, count: Int(count) - out.count)
        return out
    }

    /// The statements of a snapshot: VMAs, and with a pagemap the ptes of present pages, the
    /// pfn classes they need (from kpageflags where it can be read: the zero page, reserved
    /// frames, frames without a struct page) and a pool for later faults.
    public mutating func snapshot(
        maps: [MapsEntry], pagemapFD: Int32?, memlock: UInt64??, capIpcLock: Bool? = nil, kpageflagsFD: Int32? = nil
    ) -> [Statement] {
        var vmas: [VMASpec] = []
        for e in maps { if let v = vma(e) { vmas.append(v) } }
        var ptes: [Statement] = []
        var classed: [(start: UInt64, count: UInt64, kind: PfnClass)] = []
        var zeroPfn: UInt64?
        var unreadFlags = false
        var hidden = false
        var rng = SplitMix64(seed: seed)
        var cursor: UInt64 = 0x10_0000 + (rng.below(1 << 16) << 9)
        if let fd = pagemapFD {
            for v in vmas where v.flags.isDisjoint(with: [.io, .pfnmap]) {
                for r in Self.presentRuns(pagemapFD: fd, start: v.start.rawValue, end: v.end.rawValue) {
                    var pfn = r.pfn
                    if pfn == 0 {
                        hidden = true
                        pfn = cursor
                        cursor += r.count + rng.below(64)
                    }
                    guard !hidden, let kfd = kpageflagsFD else {
                        classed.append((pfn, r.count, .ram))
                        ptes.append(.pte(vaddr: r.vpn << 12, count: r.count, pfn: pfn, readOnly: !v.write))
                        continue
                    }
                    // Class segments of the run; the zero page gets a read-only pte of its own.
                    var pieceStart: UInt64 = 0
                    for (k, c) in Self.classes(kpageflagsFD: kfd, pfn: pfn, count: r.count).enumerated() {
                        let kind = c?.kind ?? .ram
                        if c == nil { unreadFlags = true }
                        let at = pfn + UInt64(k)
                        if let last = classed.last, last.kind == kind, last.start + last.count == at {
                            classed[classed.count - 1].count += 1
                        } else {
                            classed.append((at, 1, kind))
                        }
                        guard c?.zero == true else { continue }
                        zeroPfn = at
                        let k = UInt64(k)
                        if k > pieceStart {
                            ptes.append(
                                .pte(vaddr: (r.vpn + pieceStart) << 12, count: k - pieceStart, pfn: pfn + pieceStart, readOnly: !v.write))
                        }
                        ptes.append(.pte(vaddr: (r.vpn + k) << 12, count: 1, pfn: at, readOnly: true))
                        pieceStart = k + 1
                    }
                    if pieceStart < r.count {
                        ptes.append(
                            .pte(vaddr: (r.vpn + pieceStart) << 12, count: r.count - pieceStart, pfn: pfn + pieceStart, readOnly: !v.write))
                    }
                }
            }
        }
        if hidden {
            note("the kernel hid pagemap pfns (not root): pfns laid out from seed \(seed)")
        }
        if !classed.isEmpty && (kpageflagsFD == nil || hidden) {
            note(
                "every frame the pagemap shows is ordinary ram (/proc/kpageflags could not be read: the zero page and other reserved frames are not told apart)"
            )
        } else if unreadFlags {
            note("frames past the end of the kpageflags file are ordinary ram")
        }
        if zeroPfn == nil {
            // The kernel image and its zero page are not in any process's pagemap; without them
            // a read-only pin of untouched memory could not find the zero page, as on a host.
            note(
                "a kernel image of reserved frames at pfn \(hex(KernelImage.start))-\(hex(KernelImage.start + KernelImage.pages)) holding the zero page at \(hex(KernelImage.zeroPfn))"
            )
        }
        if capIpcLock == nil {
            note("the process does not hold CAP_IPC_LOCK (its capabilities could not be read)")
        }
        var out: [Statement] = [.pageShift(12)]
        if let memlock { out.append(.memlock(memlock)) }
        if let capIpcLock { out.append(.capIpcLock(capIpcLock)) }
        for a in assumptions { out.append(.mark("assumed: \(a)")) }
        if let zeroPfn {
            out.append(.pfns(.reserved, start: zeroPfn, count: 1))
            out.append(.zeroPage(zeroPfn))
        } else {
            out.append(.pfns(.reserved, start: KernelImage.start, count: KernelImage.pages))
            out.append(.zeroPage(KernelImage.zeroPfn))
        }
        // Every frame seen, by class (merged, in order); faults later take pages above them.
        var merged: [(start: UInt64, count: UInt64, kind: PfnClass)] = []
        for r in classed.sorted(by: { $0.start < $1.start }) {
            if let l = merged.last, l.kind == r.kind, r.start <= l.start + l.count {
                merged[merged.count - 1].count = max(l.start + l.count, r.start + r.count) - l.start
            } else {
                merged.append(r)
            }
        }
        out += merged.filter { $0.start != zeroPfn || $0.count != 1 }.map { .pfns($0.kind, start: $0.start, count: $0.count) }
        let top = merged.map { $0.start + $0.count }.max() ?? 0x10_0000
        let poolStart = (top + 0x3FFFF) & ~0x3FFFF
        // Every page a map can touch has a frame to fault in: the pool holds every page of the
        // memory VMAs (a hugetlb VMA one huge page more, for alignment), at least 1 GiB. A map
        // then fails only for a reason the trace carries, never for want of simulated memory.
        var poolPages: UInt64 = 1 << 18
        var need: UInt64 = 0
        for v in vmas where v.flags.isDisjoint(with: [.io, .pfnmap]) {
            need &+= (v.end - v.start) >> 12 &+ v.hugetlbSize >> 12
        }
        poolPages = max(poolPages, need)
        out.append(
            .mark("assumed: a pool of \(humanPages(poolPages)) at pfn \(hex(poolStart)) for faults, as much as the memory mappings hold"))
        out.append(.pool(start: poolStart, count: poolPages))
        out += vmas.map { .vma($0) }
        out += ptes
        return out
    }
}

/// RLIMIT_MEMLOCK from `/proc/PID/limits` text: bytes, nil for unlimited, or (outer) nil when
/// the line is not there.
public func memlockLimit(_ limits: String) -> UInt64?? {
    for line in limits.split(whereSeparator: \.isNewline) where line.hasPrefix("Max locked memory") {
        let fields = line.dropFirst("Max locked memory".count).split(separator: " ")
        guard let soft = fields.first else { return nil }
        if soft == "unlimited" { return .some(nil) }
        return UInt64(soft).map { .some($0) }
    }
    return nil
}

/// RLIMIT_MEMLOCK of a live process, as `memlockLimit`; nil as well when its limits cannot be read.
public func memlockLimit(pid: Int32) -> UInt64?? {
    (try? readProcText("/proc/\(pid)/limits")).flatMap(memlockLimit)
}

/// `/proc/kpageflags` (or a saved copy) opened for reading, or nil with the reason when it
/// cannot be (it needs root).
public func openKpageflags(_ path: String = "/proc/kpageflags") -> Int32? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    return fd >= 0 ? fd : nil
}

/// Whether `/proc/PID/status` text shows CAP_IPC_LOCK (bit 14) in the effective set, nil when
/// it has no readable `CapEff` line.
public func capIpcLock(status: String) -> Bool? {
    for line in status.split(whereSeparator: \.isNewline) where line.hasPrefix("CapEff:") {
        let hexDigits = line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces)
        return UInt64(hexDigits, radix: 16).map { $0 & (1 << 14) != 0 }
    }
    return nil
}

/// CAP_IPC_LOCK of a live process, as `capIpcLock(status:)`.
public func capIpcLock(pid: Int32) -> Bool? {
    (try? readProcText("/proc/\(pid)/status")).flatMap { capIpcLock(status: $0) }
}

extension UInt64 {
    /// The smallest power of two at least this large.
    var nextPowerOfTwo: UInt64 {
        self <= 1 ? 1 : 1 << (64 - (self - 1).leadingZeroBitCount)
    }
}

/// `n` pages as bytes for a person: `1 GiB`, `7.5 GiB`.
func humanPages(_ n: UInt64) -> String {
    let gib = Double(n) / Double(1 << 18)
    return gib == gib.rounded() ? "\(Int(gib)) GiB" : String(format: "%.1f GiB", gib)
}

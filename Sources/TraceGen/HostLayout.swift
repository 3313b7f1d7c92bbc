import TraceFormat

/// Where a plausible x86 host keeps its kernel image: used by the generator and by recordings,
/// which cannot see the real one.
public enum KernelImage {
    /// The image at 16 MiB: reserved (memblock-reserved `_text.._end`).
    public static let start: UInt64 = 0x1000
    /// Frames in the range.
    public static let pages: UInt64 = 0x1800
    /// The shared zero page sits in the image's .bss, 32 pages before its end: a zero-page run
    /// longer than that leaves the reserved image and reaches ordinary RAM.
    public static let zeroPfn: UInt64 = start + pages - 0x20
}

/// The host's physical memory as the generator lays it out: the kernel image (with the zero
/// page in its .bss), host RAM below the PCI MMIO windows, the free pool the guest's faults
/// draw from, and the host BARs, naturally aligned, never overlapping.
struct HostLayout {
    static let pageShift: UInt64 = 12
    static let kernelStart = KernelImage.start
    static let kernelPages = KernelImage.pages
    static let zeroPfn = KernelImage.zeroPfn
    /// Host RAM below the 32-bit PCI hole: 40 MiB .. 3 GiB.
    static let lowRAM: Range<UInt64> = (kernelStart + kernelPages)..<0xC0000
    /// Host RAM above 4 GiB starts here; the 64-bit MMIO window caps it.
    static let highRAMStart: UInt64 = 0x100000
    static let mmio32: Range<UInt64> = 0xC0000..<0xFEC00
    static let mmio64: Range<UInt64> = 0x3800_0000..<0x4000_0000  // 3.5 TiB .. 4 TiB
    /// A pool fragment for 4 KiB faults (ROM images, stray pages) below the guest's blocks.
    static let smallPoolPages: UInt64 = 0x4000

    /// Host RAM above 4 GiB, in pages.
    let highRAMPages: UInt64
    /// Free pool fragments, ascending: (first pfn, pages).
    var pool: [(start: UInt64, count: UInt64)] = []
    /// A device's BAR.
    struct BarKey: Hashable {
        var device: String
        var index: Int
    }
    /// Host pfn of each device's BARs.
    var barPfn: [BarKey: UInt64] = [:]

    init(_ c: GenConfig, rng: inout SplitMix64) throws(GenError) {
        let guestPages = (c.ram + c.hotplug) >> Self.pageShift
        // Room for the guest, the rest of the host's work and the pool's gaps.
        let wanted = (guestPages + guestPages / 4 + (8 << 18) + 0x3FFFF) & ~0x3FFFF
        guard Self.highRAMStart + wanted <= Self.mmio64.lowerBound else {
            let maxGuest = ((Self.mmio64.lowerBound - Self.highRAMStart - (8 << 18)) * 4 / 5) << Self.pageShift
            throw GenError(
                "--ram \(humanBytes(c.ram)) does not fit the host layout (at most about \(humanBytes(maxGuest & ~((1 << 30) - 1))) of guest RAM)"
            )
        }
        highRAMPages = wanted
        try layPool(c, rng: &rng)
        try placeBARs(c, rng: &rng)
    }

    /// Pool fragments with seeded sizes and gaps, shaped by the backing, until the guest's
    /// faults are covered with room to spare.
    private mutating func layPool(_ c: GenConfig, rng: inout SplitMix64) throws(GenError) {
        var at = Self.highRAMStart + (1 << 18)  // the first GiB above 4 GiB is the host's own
        pool.append((at, Self.smallPoolPages))
        at += Self.smallPoolPages
        let block = max(1, c.backing.hugePage >> Self.pageShift)
        let needed = (c.ram + c.hotplug) >> Self.pageShift + 1024
        var have: UInt64 = 0
        let limit = Self.highRAMStart + highRAMPages
        while have < needed {
            var count: UInt64
            var gap: UInt64
            var aligned = true
            switch c.backing {
            case .anon:
                count = rng.logUniform(0, 9)
                gap = rng.logUniform(0, 6)
            case .memfd:
                count = rng.logUniform(4, 12)
                gap = rng.logUniform(0, 8)
            case .thp:
                if rng.chance(5) {
                    // A fragmented stretch: 4 KiB pieces where a huge page could not be had.
                    count = rng.logUniform(0, 8)
                    aligned = false
                } else {
                    count = rng.logUniform(0, 7) * 512
                }
                gap = rng.logUniform(0, 4) * 512
            case .hugetlb2m:
                count = rng.logUniform(0, 8) * block
                gap = rng.inRange(0, 4) * block
            case .hugetlb1g:
                count = rng.inRange(1, 16) * block
                gap = rng.inRange(0, 2) * block
            }
            // Never much more than what is still needed, so the pool fits the host's RAM.
            count = min(count, (needed - have + block - 1) / block * block + block)
            let align = aligned ? max(block, c.backing == .thp ? 512 : 1) : 1
            at = (at + gap + align - 1) / align * align
            guard at + count <= limit else { throw GenError("internal: the pool does not fit the host layout") }
            pool.append((at, count))
            have += count
            at += count
        }
    }

    /// Host BARs: naturally aligned at seeded slots of the 32-bit window (below 32 MiB) or the
    /// 64-bit window, never overlapping.
    private mutating func placeBARs(_ c: GenConfig, rng: inout SplitMix64) throws(GenError) {
        var taken: [Range<UInt64>] = []
        for d in c.devices {
            for b in d.bars {
                let pages = b.size >> Self.pageShift
                let window = b.size >= 32 << 20 ? Self.mmio64 : Self.mmio32
                let first = (window.lowerBound + pages - 1) / pages * pages
                guard first + pages <= window.upperBound else {
                    throw GenError("--device \(d.name): bar\(b.index) of \(humanBytes(b.size)) does not fit the host's MMIO window")
                }
                let slots = (window.upperBound - first) / pages
                var pfn: UInt64?
                for _ in 0..<64 {
                    let candidate = first + rng.below(slots) * pages
                    if !taken.contains(where: { $0.overlaps(candidate..<candidate + pages) }) {
                        pfn = candidate
                        break
                    }
                }
                if pfn == nil {
                    pfn = (0..<slots).lazy.map { first + $0 * pages }
                        .first { c in !taken.contains { $0.overlaps(c..<c + pages) } }
                }
                guard let pfn else {
                    throw GenError("the devices' BARs do not fit the host's MMIO windows")
                }
                taken.append(pfn..<pfn + pages)
                barPfn[BarKey(device: d.name, index: b.index)] = pfn
            }
        }
    }

    /// The statements that declare this layout.
    func statements() -> [Statement] {
        var out: [Statement] = [
            .pfns(.reserved, start: Self.kernelStart, count: Self.kernelPages),
            .zeroPage(Self.zeroPfn),
            .pfns(.ram, start: Self.lowRAM.lowerBound, count: UInt64(Self.lowRAM.count)),
            .pfns(.ram, start: Self.highRAMStart, count: highRAMPages),
        ]
        out += pool.map { .pool(start: $0.start, count: $0.count) }
        return out
    }
}

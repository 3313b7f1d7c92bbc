import TraceFormat

/// Generates the map/unmap stream QEMU's VFIO memory listener issues for a pc/q35 guest with
/// assigned devices on a legacy type1 container, from realize to shutdown (KERNEL-NOTES §4).
///
/// The seed changes only what a seed should (physical placement of pool pages, host BAR
/// addresses, the vIOMMU request mix); the boot's structure follows from the configuration.
public struct BootGenerator {
    /// The configuration being generated.
    public let config: GenConfig
    var rng: SplitMix64
    let host: HostLayout

    // Virtual layout of the QEMU process.
    /// Where QEMU's mappings lie in its address space.
    let va: VirtualLayout
    static let romSize: UInt64 = 0x20000
    static let biosSize: UInt64 = 0x40000
    /// Pages of pc.rom QEMU wrote (option ROMs) and of pc.bios (the firmware image, at its
    /// top, so inside the isa-bios alias too); the rest was never written, so a read-only pin
    /// finds the zero page there. This models firmware images smaller than their regions.
    static let romWrittenPages: UInt64 = 10
    static let biosWrittenPages: UInt64 = 16
    static let gib: UInt64 = 1 << 30

    /// Checks the configuration and lays out the host; throws for impossible parameters.
    public init(_ config: GenConfig) throws(GenError) {
        let c = config
        guard c.ram >= 16 << 20 else { throw GenError("--ram must be at least 16M") }
        guard c.ram & 0xFFF == 0 else { throw GenError("--ram \(c.ram) is not page aligned") }
        if c.backing.hugePage != 0 {
            guard c.ram % c.backing.hugePage == 0, c.hotplug % c.backing.hugePage == 0 else {
                throw GenError(
                    "--ram and --hotplug must be multiples of the \(humanBytes(c.backing.hugePage)) huge page with --backing \(c.backing.rawValue)"
                )
            }
        }
        guard c.hotplug & 0xFFF == 0 else { throw GenError("--hotplug \(c.hotplug) is not page aligned") }
        guard !c.devices.isEmpty else { throw GenError("at least one --device is needed: without one there is no VFIO container") }
        guard Set(c.devices.map(\.name)).count == c.devices.count else { throw GenError("two devices share a name") }
        guard (0...1000).contains(c.reboots) else { throw GenError("--reboots must be between 0 and 1000") }
        guard (0...100_000_000).contains(c.requests) else { throw GenError("--requests must be between 0 and 100000000") }
        guard c.hotplug == 0 || !c.viommu else { throw GenError("--hotplug does not combine with a vIOMMU profile here") }
        self.config = c
        var rng = SplitMix64(seed: c.seed)
        host = try HostLayout(c, rng: &rng)
        va = try VirtualLayout(c)
        self.rng = rng
        _ = try barAssignments()
    }

    // MARK: - Guest physical layout

    /// Where low RAM ends (below 4 GiB).
    var lowmem: UInt64 {
        switch config.machine {
        case .q35: config.ram >= 0xB000_0000 ? 0x8000_0000 : config.ram
        case .pc: config.ram >= 0xE000_0000 ? 0xC000_0000 : config.ram
        }
    }

    var highRAM: UInt64 { config.ram - lowmem }

    /// A guest-physical range QEMU's listener maps: what it is and where its memory is.
    struct Section {
        var gpa: UInt64
        var size: UInt64
        var vaddr: UInt64
        var access: Access
    }

    /// The RAM and ROM sections of the flat view with PAM routing 0xc0000-0xfffff to ROM
    /// (RAM alone with `ramOnly`).
    var bootSections: [Section] {
        allSections.filter { !config.ramOnly || $0.access.contains(.write) }
    }

    private var allSections: [Section] {
        var s: [Section] = [
            Section(gpa: 0, size: 0xA0000, vaddr: va.ram, access: [.read, .write]),
            Section(gpa: 0xC0000, size: Self.romSize, vaddr: va.rom, access: .read),
            // isa-bios aliases the last 128 KiB of pc.bios.
            Section(gpa: 0xE0000, size: 0x20000, vaddr: va.bios + Self.biosSize - 0x20000, access: .read),
            Section(gpa: 0x10_0000, size: lowmem - 0x10_0000, vaddr: va.ram + 0x10_0000, access: [.read, .write]),
            Section(gpa: (1 << 32) - Self.biosSize, size: Self.biosSize, vaddr: va.bios, access: .read),
        ]
        if highRAM > 0 {
            s.append(Section(gpa: 1 << 32, size: highRAM, vaddr: va.ram + lowmem, access: [.read, .write]))
        }
        return s
    }

    /// The PAM segments over 0xc0000-0xfffff: twelve of 16 KiB, one of 64 KiB, each its own
    /// alias of pc.ram, so the flat view never merges them.
    var pamSegments: [(gpa: UInt64, size: UInt64)] {
        (0..<12).map { (0xC0000 + UInt64($0) * 0x4000, 0x4000) } + [(0xF0000, 0x10000)]
    }

    /// One BAR as the guest sees it: its pieces to DMA-map and the process VMA behind it.
    struct BAR {
        var device: String
        var index: Int
        var size: UInt64
        var guest: UInt64
        var vaddr: UInt64
        var hostPfn: UInt64
        var msix: UInt64?
        /// The ranges QEMU DMA-maps: the whole BAR, or the parts around the MSI-X table page.
        var pieces: [Section] {
            guard let off = msix else { return [Section(gpa: guest, size: size, vaddr: vaddr, access: [.read, .write])] }
            var out: [Section] = []
            if off > 0 { out.append(Section(gpa: guest, size: off, vaddr: vaddr, access: [.read, .write])) }
            if off + 0x1000 < size {
                out.append(
                    Section(gpa: guest + off + 0x1000, size: size - off - 0x1000, vaddr: vaddr + off + 0x1000, access: [.read, .write]))
            }
            return out
        }
    }

    /// Firmware's BAR assignment (largest first, naturally aligned; 32-bit BARs above low RAM,
    /// 64-bit ones above RAM and hotplug space) and QEMU's BAR mmaps.
    func barAssignments() throws(GenError) -> [BAR] {
        var bars: [BAR] = []
        var va = self.va.bar
        for d in config.devices {
            for b in d.bars {
                let align = config.alignBARs ? min(b.size, Self.gib) : 0x1000
                va = (va + align - 1) / align * align
                // The host layout placed every BAR of every device; one missing is a bug here.
                guard let hostPfn = host.barPfn[HostLayout.BarKey(device: d.name, index: b.index)] else {
                    throw GenError("internal: no host frames for \(d.name) BAR\(b.index)")
                }
                bars.append(BAR(device: d.name, index: b.index, size: b.size, guest: 0, vaddr: va, hostPfn: hostPfn, msix: b.msixOffset))
                va += b.size
            }
        }
        var next32 = max(0xC000_0000, (lowmem + 0xFF_FFFF) & ~0xFF_FFFF)
        var next64 = ((1 << 32) + highRAM + config.hotplug + Self.gib - 1) & ~(Self.gib - 1)
        for i in bars.indices.sorted(by: { (bars[$0].size, -$0) > (bars[$1].size, -$1) }) {
            let size = bars[i].size
            if size >= 32 << 20 {
                next64 = (next64 + size - 1) / size * size
                bars[i].guest = next64
                next64 += size
            } else {
                next32 = (next32 + size - 1) / size * size
                guard next32 + size <= 0xFEC0_0000 else { throw GenError("the 32-bit BARs do not fit below 4 GiB in the guest") }
                bars[i].guest = next32
                next32 += size
            }
        }
        return bars
    }
}

/// QEMU's mappings in its 47-bit address space: pc.ram, the hotplugged DIMM, pc.rom and pc.bios,
/// the BAR mmaps. Up to 512 GiB of RAM (and the DIMM within its 256 GiB slot) they lie at the
/// fixed addresses every generated trace so far has used (RAM below pc.rom, or below the DIMM's
/// slot when there is one); past that they are laid out top-down
/// from the sizes, as mmap() would, each on a 1 GiB boundary.
struct VirtualLayout: Equatable {
    var ram: UInt64 = 0x7E00_0000_0000
    var dimm: UInt64 = 0x7E40_0000_0000
    var rom: UInt64 = 0x7E80_0000_0000
    var bios: UInt64 = 0x7E80_0010_0000
    var bar: UInt64 = 0x7F00_0000_0000

    static let gib: UInt64 = 1 << 30
    /// The end of the user address space with 4-level paging, less room for the stack.
    static let userTop: UInt64 = 0x7FFF_0000_0000
    /// Below this lie the executable, the heap and the libraries.
    static let userBottom: UInt64 = 0x10_0000_0000

    init(_ c: GenConfig) throws(GenError) {
        let g = Self.gib
        func up(_ v: UInt64) -> UInt64 { (v + g - 1) & ~(g - 1) }
        // BAR mmaps, each aligned as QEMU aligns it (at most 1 GiB), one after the other.
        var barSpan: UInt64 = 0
        for d in c.devices { for b in d.bars { barSpan = (barSpan + min(b.size, g) - 1) / min(b.size, g) * min(b.size, g) + b.size } }
        let ramFits = c.hotplug == 0 ? c.ram <= rom - ram : c.ram <= dimm - ram && c.hotplug <= rom - dimm
        let fixedFits = ramFits && bar + up(barSpan) <= Self.userTop
        if fixedFits { return }
        let need = up(barSpan) + g + up(c.hotplug) + up(c.ram) + 3 * g
        guard need <= Self.userTop - Self.userBottom else {
            throw GenError(
                "--ram \(humanBytes(c.ram)) with --hotplug \(humanBytes(c.hotplug)) and the BARs do not fit a 47-bit user address space (at most about \(humanBytes((Self.userTop - Self.userBottom - up(barSpan) - 4 * g) & ~(g - 1))) in all)"
            )
        }
        bar = (Self.userTop - up(barSpan)) & ~(g - 1)
        rom = bar - 2 * g
        bios = rom + 0x10_0000
        dimm = rom - g - up(c.hotplug)
        ram = dimm - g - up(c.ram)
    }
}

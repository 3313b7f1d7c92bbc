import TraceFormat

/// Statements on their way out, with the mappings QEMU holds, so every unmap matches a map.
private struct Emitter {
    let emit: (Statement) throws(TraceError) -> Void
    /// Live DMA mappings: iova -> size.
    var live: [UInt64: UInt64] = [:]
    /// RLIMIT_MEMLOCK in pages and what the maps so far charged, to know where a tight limit
    /// makes QEMU's realize fail.
    let limitPages: UInt64
    var chargedPages: UInt64 = 0

    mutating func put(_ s: Statement) throws(TraceError) { try emit(s) }

    mutating func mark(_ text: String) throws(TraceError) { try emit(.mark(TraceText(text))) }

    /// Maps a section; returns false when the map would run past RLIMIT_MEMLOCK (-ENOMEM).
    mutating func map(_ s: BootGenerator.Section, charged: UInt64) throws(TraceError) -> Bool {
        try emit(.map(iova: s.gpa, vaddr: s.vaddr, size: s.size, access: s.access))
        chargedPages += charged
        if chargedPages > limitPages { return false }
        live[s.gpa] = s.size
        return true
    }

    mutating func unmap(_ gpa: UInt64) throws(TraceError) {
        guard let size = live.removeValue(forKey: gpa) else { preconditionFailure("unmap of \(hex(gpa)) that is not mapped") }
        try emit(.unmap(iova: gpa, size: size))
    }

    /// Every live mapping, in ascending iova, as the listener's region_del walks the flat view.
    mutating func unmapAll() throws(TraceError) {
        for gpa in live.keys.sorted() { try unmap(gpa) }
    }
}

extension BootGenerator {
    /// Emits the whole boot, statement by statement.
    public mutating func run(_ emit: @escaping (Statement) throws(TraceError) -> Void) throws(TraceError) {
        let c = config
        var e = Emitter(emit: emit, limitPages: c.effectiveMemlock >> 12)
        // Every part of this is fixed by checks in init.
        guard let bars = try? barAssignments() else { preconditionFailure("BAR assignment failed after init") }

        try e.put(.pageShift(12))
        try e.put(.memlock(c.effectiveMemlock == .max ? nil : c.effectiveMemlock))
        try e.put(.capIpcLock(false))
        for s in host.statements() { try e.put(s) }

        try e.mark("realize: QEMU allocates guest RAM (\(humanBytes(c.ram)), \(c.backing.rawValue)) and ROMs")
        try e.put(.vma(ramVMA(start: va.ram, size: c.ram, name: "pc.ram")))
        try e.put(.vma(VMASpec(start: va.rom, end: va.rom + Self.romSize, name: "pc.rom")))
        try e.put(.vma(VMASpec(start: va.bios, end: va.bios + Self.biosSize, name: "pc.bios")))
        try e.put(.touch(vaddr: va.rom, count: Self.romWrittenPages, write: true))
        try e.put(.touch(vaddr: va.bios + Self.biosSize - Self.biosWrittenPages << 12, count: Self.biosWrittenPages, write: true))
        try e.mark("realize: vfio-pci mmaps the BARs of \(c.devices.map(\.name).joined(separator: ", "))")
        for b in bars {
            try e.put(
                .vma(
                    VMASpec(
                        start: b.vaddr, end: b.vaddr + b.size, flags: [.io, .pfnmap, .shared, .linear], pgoff: b.hostPfn,
                        name: "anon_inode:[vfio-device] \(b.device) BAR\(b.index)")))
        }
        try e.mark("realize: the vfio listener replays the flat view")
        guard try mapSections(bootSections, &e) else {
            try e.mark("realize failed: vfio_dma_map = -12 (Cannot allocate memory): QEMU exits")
            try e.unmapAll()
            return
        }

        for boot in 0...c.reboots {
            if boot > 0 {
                try e.mark("reset: guest reboot \(boot); BARs unmapped, RAM stays pinned, PAM back to ROM")
                if c.viommu {
                    // DMAR goes off: the IOMMU region leaves, system memory comes back.
                    try unmapWholeIOVASpace(&e)
                    _ = try mapSections(bootSections, &e)
                } else {
                    for b in bars { for p in b.pieces { try e.unmap(p.gpa) } }
                    if !c.ramOnly {
                        for seg in pamSegments { try e.unmap(seg.gpa) }
                        _ = try mapSections(bootSections.filter { $0.gpa >= 0xC0000 && $0.gpa < 0x10_0000 }, &e)
                    }
                }
            }
            try firmware(bars, &e)
            try osProbe(bars, &e)
            if boot == 0 && c.hotplug > 0 {
                try e.mark("DIMM hotplug: \(humanBytes(c.hotplug)) plugged")
                try e.put(.vma(ramVMA(start: va.dimm, size: c.hotplug, name: "dimm0")))
                _ = try e.map(Section(gpa: dimmGPA, size: c.hotplug, vaddr: va.dimm, access: [.read, .write]), charged: 0)
            }
            if c.viommu { try dmarChurn(&e) }
        }

        if c.hotplug > 0 {
            try e.mark("DIMM unplug")
            try e.unmap(dimmGPA)
            try e.put(.munmap(start: va.dimm, end: va.dimm + c.hotplug))
        }
        try e.mark("shutdown: QEMU exits; the listener unmaps every section")
        if c.viommu { try unmapWholeIOVASpace(&e) }
        try e.unmapAll()
    }

    /// The guest RAM VMA for the configured backing.
    func ramVMA(start: UInt64, size: UInt64, name: String) -> VMASpec {
        switch config.backing {
        case .anon, .thp:
            return VMASpec(start: start, end: start + size, name: TraceText(name))
        case .memfd:
            return VMASpec(start: start, end: start + size, flags: [.shared], name: "/memfd:\(name) (deleted)")
        case .hugetlb2m, .hugetlb1g:
            return VMASpec(
                start: start, end: start + size, hugetlbSize: config.backing.hugePage,
                name: "/dev/hugepages/qemu_back_mem.\(name) (deleted)")
        }
    }

    /// Maps sections in order, charging RAM pages; false at the first that RLIMIT_MEMLOCK refuses.
    private func mapSections(_ sections: [Section], _ e: inout Emitter) throws(TraceError) -> Bool {
        for s in sections {
            let charged: UInt64 =
                switch s.gpa {
                case 0xC0000: Self.romWrittenPages
                case 0xE0000: Self.biosWrittenPages
                case (1 << 32) - Self.biosSize: Self.biosWrittenPages
                default: s.size >> 12
                }
            guard try e.map(s, charged: charged) else { return false }
        }
        return true
    }

    /// SeaBIOS: shadows itself into RAM through PAM, then enables decode on every device.
    private func firmware(_ bars: [BAR], _ e: inout Emitter) throws(TraceError) {
        if !config.ramOnly { try shadowBIOS(&e) }
        for d in config.devices {
            try e.mark("firmware: SeaBIOS assigns \(d.name)'s BARs and enables memory decode")
            for b in bars where b.device == d.name { for p in b.pieces { _ = try e.map(p, charged: 0) } }
        }
    }

    /// PAM: the ROM windows give way to RAM, read-write while SeaBIOS copies itself, then
    /// read-only.
    private func shadowBIOS(_ e: inout Emitter) throws(TraceError) {
        try e.mark("firmware: SeaBIOS shadows the BIOS into RAM (PAM read-write)")
        try e.unmap(0xC0000)
        try e.unmap(0xE0000)
        for seg in pamSegments {
            _ = try e.map(Section(gpa: seg.gpa, size: seg.size, vaddr: va.ram + seg.gpa, access: [.read, .write]), charged: 0)
        }
        try e.mark("firmware: PAM read-only")
        for seg in pamSegments {
            try e.unmap(seg.gpa)
            _ = try e.map(Section(gpa: seg.gpa, size: seg.size, vaddr: va.ram + seg.gpa, access: .read), charged: 0)
        }
    }

    /// The OS probe: Linux sizes each device's BARs with decode off, then turns it on again.
    private func osProbe(_ bars: [BAR], _ e: inout Emitter) throws(TraceError) {
        for d in config.devices {
            try e.mark("BAR sizing: Linux turns memory decode off on \(d.name)")
            for b in bars where b.device == d.name { for p in b.pieces { try e.unmap(p.gpa) } }
            try e.mark("OS probe: memory decode back on for \(d.name)")
            for b in bars where b.device == d.name { for p in b.pieces { _ = try e.map(p, charged: 0) } }
        }
        if config.intx, let d = config.devices.first {
            try e.mark("INTx without KVM: \(config.requests) interrupts, each unmaps \(d.name)'s BARs and maps them again 1.1 s later")
            for _ in 0..<config.requests {
                for b in bars where b.device == d.name { for p in b.pieces { try e.unmap(p.gpa) } }
                for b in bars where b.device == d.name { for p in b.pieces { _ = try e.map(p, charged: 0) } }
            }
        }
    }

    /// Hotplugged memory sits right above RAM.
    var dimmGPA: UInt64 { ((1 << 32) + highRAM + Self.gib - 1) & ~(Self.gib - 1) }

    /// intel-iommu: the guest enables DMAR, RAM goes, and every IOTLB change is one small
    /// map or unmap; at reset QEMU unmaps the whole IOVA space.
    private mutating func dmarChurn(_ e: inout Emitter) throws(TraceError) {
        try e.mark("OS: the guest enables DMAR (intel-iommu, caching mode); system memory sections removed")
        try e.unmapAll()
        try e.mark("IOTLB churn: \(config.requests) guest DMA maps through the vIOMMU")
        var window: [UInt64] = []
        var nextIOVA: UInt64 = 0xFFFF_F000
        let ramPages = config.ram >> 12
        for _ in 0..<config.requests {
            // Mostly single pages (descriptors, packet buffers), some larger buffers, now and
            // then a 2 MiB superpage.
            let size: UInt64 = rng.chance(90) ? 0x1000 : rng.chance(90) ? rng.logUniform(13, 16) : 0x20_0000
            var iova = (nextIOVA - size) & ~(size - 1)
            if iova < 0x1000_0000 { iova = (0xFFFF_F000 - size) & ~(size - 1) }
            nextIOVA = iova
            let pages = size >> 12
            let page = rng.below(ramPages / pages) * pages
            let access: Access = rng.chance(10) ? .read : [.read, .write]
            _ = try e.map(Section(gpa: iova, size: size, vaddr: va.ram + page << 12, access: access), charged: 0)
            window.append(iova)
            if window.count > 32 { try e.unmap(window.removeFirst()) }
        }
    }

    /// QEMU cannot ask for 2^64 bytes at once: it unmaps [0, 2^63) and [2^63, 2^64). Linux 4.16
    /// refuses an unmap ending at 2^64 (-EINVAL), so QEMU retries one page short (567d7d3e6be5).
    private func unmapWholeIOVASpace(_ e: inout Emitter) throws(TraceError) {
        try e.put(.unmap(iova: 0, size: 1 << 63))
        try e.put(.unmap(iova: 1 << 63, size: 1 << 63))
        try e.put(.unmap(iova: 1 << 63, size: (1 << 63) - 0x1000))
        e.live.removeAll()
    }
}

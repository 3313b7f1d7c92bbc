// swift-format-ignore-file: AlwaysUseLowerCamelCase

// A C engine: the pinning functions of vfio_iommu_type1.c cut from a reviewer's own file and
// compiled against include/pinreplay/kernel-ERA.h, called through the C ABI of world.h. The
// world (GUP, VMAs, frames, external pins) stays the Swift one, so a C engine and a Swift
// engine of the same kernel give the same outcomes, costs and violations.
import CEngineABI
import VFIOModel

/// An engine compiled from C; built by `CEngineLoader`.
public final class CEngine: PinEngine, @unchecked Sendable {
    // Immutable after init: the functions of a shared object that stays loaded.
    typealias PinPagesRemote =
        @convention(c) (
            UnsafeMutablePointer<pinreplay_world>?, UnsafeMutablePointer<pinreplay_dma>?, UInt, Int, UnsafeMutablePointer<UInt>?, Int32,
            UInt, UnsafeMutablePointer<pinreplay_batch>?
        ) -> Int
    typealias UnpinPagesRemote =
        @convention(c) (
            UnsafeMutablePointer<pinreplay_world>?, UnsafeMutablePointer<pinreplay_dma>?, UInt64, UInt, Int, Int32
        ) -> Int
    typealias PinPageExternal =
        @convention(c) (
            UnsafeMutablePointer<pinreplay_world>?, UnsafeMutablePointer<pinreplay_dma>?, UInt, UnsafeMutablePointer<UInt>?, Int32
        ) -> Int32

    /// What was compiled, and for which era.
    public let compiled: CompiledCEngine
    let pinPagesRemote: PinPagesRemote
    let unpinPagesRemote: UnpinPagesRemote
    let pinPageExternal: PinPageExternal

    init(
        _ compiled: CompiledCEngine, pinPagesRemote: PinPagesRemote, unpinPagesRemote: UnpinPagesRemote,
        pinPageExternal: PinPageExternal
    ) {
        self.compiled = compiled
        self.pinPagesRemote = pinPagesRemote
        self.unpinPagesRemote = unpinPagesRemote
        self.pinPageExternal = pinPageExternal
    }

    /// The file's stem, as the reports name the engine (or the name given with `NAME=PATH`).
    public var name: String { compiled.name }
    /// The C file, as named on the command line.
    public var path: String { compiled.path }
    /// The kernel API the file was compiled against, e.g. `4.16`.
    public var kernelAPI: String { compiled.kernelAPI.rawValue }
    /// The world's rules for the era: those of the Swift engine of the same kernel.
    public var profile: EngineProfile { compiled.kernelAPI.profile }

    /// An entry point of the loaded library, to find where it was loaded (`dladdr`).
    public var entryPoint: UnsafeRawPointer { unsafeBitCast(pinPagesRemote, to: UnsafeRawPointer.self) }

    public var aliases: [String] { [] }
    public var summary: String { compiled.summary }
    public var kernels: String { compiled.kernels }

    /// Calls the compiled `vfio_pin_pages_remote()` on `k`'s world.
    public func vfio_pin_pages_remote(
        _ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ npage: Int, _ pfn_base: inout PFN, _ limit: UInt64,
        _ batch: inout VFIOBatch
    ) -> Int {
        var base: UInt = 0
        let ret = batch.pages.withUnsafeMutableBufferPointer { pages in
            // PFN is one UInt64: the batch's storage is the pfns array world.h describes.
            pages.withMemoryRebound(to: UInt.self) { pfns in
                var b = pinreplay_batch(
                    pfns: pfns.baseAddress, capacity: UInt32(batch.capacity), size: UInt32(batch.size),
                    offset: UInt32(batch.offset))
                let ret = call(k, dma) { w, d in
                    pinPagesRemote(w, d, UInt(vaddr.rawValue), npage, &base, dma.lock_cap ? 1 : 0, UInt(limit), &b)
                }
                batch.size = Int(b.size)
                batch.offset = Int(b.offset)
                return ret
            }
        }
        pfn_base = PFN(UInt64(base))
        return ret
    }

    /// Calls the compiled `vfio_pin_page_external()` on `k`'s world.
    public func vfio_pin_page_external(_ k: Host, _ dma: VFIODma, _ vaddr: VAddr, _ pfn_base: inout PFN, _ do_accounting: Bool)
        -> Int
    {
        var base: UInt = 0
        let ret = call(k, dma) { w, d in
            Int(pinPageExternal(w, d, UInt(vaddr.rawValue), &base, do_accounting ? 1 : 0))
        }
        pfn_base = PFN(UInt64(base))
        return ret
    }

    /// Calls the compiled `vfio_unpin_pages_remote()` on `k`'s world.
    public func vfio_unpin_pages_remote(_ k: Host, _ dma: VFIODma, _ iova: IOVA, _ pfn: PFN, _ npage: Int, _ do_accounting: Bool)
        -> Int
    {
        call(k, dma) { w, d in
            unpinPagesRemote(w, d, iova.rawValue, UInt(pfn.rawValue), npage, do_accounting ? 1 : 0)
        }
    }

    /// Runs one entry point with the host as its world: locked_vm and the dma's has_rsvd go in
    /// and come back, the engine's own counts are added to the host's.
    private func call(
        _ k: Host, _ dma: VFIODma, _ body: (UnsafeMutablePointer<pinreplay_world>, UnsafeMutablePointer<pinreplay_dma>) -> Int
    ) -> Int {
        var w = pinreplay_world()
        w.host = Unmanaged.passUnretained(k).toOpaque()
        w.locked_vm = UInt(bitPattern: Int(k.mm.locked_vm))
        w.rlimit_memlock = UInt(k.rlimit_memlock())
        w.cap_ipc_lock = k.cap_ipc_lock ? 1 : 0
        w.disable_hugepages = k.disable_hugepages ? 1 : 0
        w.get_user_page = World.getUserPage
        w.gup_run = World.gupRun
        w.gup_run_take = World.gupRunTake
        w.find_vma_intersection = World.findVMAIntersection
        w.pfn_class_stretch = World.pfnClassStretch
        w.put_pages = World.putPages
        w.dma_pins = World.dmaPins
        if let zero = k.phys.zeroPfn {
            w.zero_pfn = UInt(zero.rawValue)
            w.has_zero_pfn = 1
        }
        w.pin_user_pages = World.pinUserPages
        w.unpin_user_page_range = World.unpinUserPageRange
        w.follow_pfnmap = World.followPfnmap
        w.follow_pte = World.followPte
        w.fixup_user_fault = World.fixupUserFault
        var d = pinreplay_dma(
            handle: Unmanaged.passUnretained(dma).toOpaque(), iova: dma.iova.rawValue, vaddr: UInt(dma.vaddr.rawValue),
            size: UInt(dma.size), prot: Int32(dma.prot.rawValue), lock_cap: dma.lock_cap ? 1 : 0, has_rsvd: dma.has_rsvd ? 1 : 0,
            pins_version: dma.pinsVersion)
        let ret = withUnsafeMutablePointer(to: &w) { w in withUnsafeMutablePointer(to: &d) { d in body(w, d) } }
        dma.has_rsvd = d.has_rsvd != 0
        k.mm.locked_vm = Int64(Int(bitPattern: w.locked_vm))
        k.counters.vaddr_get_pfn += Int(w.counts.vaddr_get_pfn)
        k.counters.pages_walked += Int(w.counts.pages_walked)
        k.counters.put_pfn += Int(w.counts.put_pfn)
        k.counters.vfio_lock_acct += Int(w.counts.vfio_lock_acct)
        k.counters.mmap_lock += Int(w.counts.mmap_lock)
        return ret
    }
}

/// The callbacks of world.h: the Swift host behind the C kernel API.
enum World {
    /// Runs `body` on the host passed in by `CEngine.call`, alive for the call: borrowed, without
    /// the retain and release per callback that taking the reference out would cost.
    @inline(__always) static func withHost<R>(_ p: UnsafeMutableRawPointer?, _ body: (Host) -> R) -> R {
        Unmanaged<Host>.fromOpaque(p.unsafelyUnwrapped)._withUnsafeGuaranteedRef(body)
    }

    static let getUserPage:
        @convention(c) (UnsafeMutableRawPointer?, UInt, Int32, UnsafeMutablePointer<UInt>?, UnsafeMutablePointer<pinreplay_vma>?) -> Int = {
            p, vaddr, write, pfn, vma in
            withHost(p) { k in
                let mm = k.mm
                var page: PFN = 0
                let ret = k.get_user_pages(mm, VAddr(UInt64(vaddr)), write: write != 0, &page)
                guard ret == 1 else { return ret }
                pfn?.pointee = UInt(page.rawValue)
                // The VMA GUP went through: its own lookup, not counted as a find_vma.
                if let vma, let found = mm.findVMAIntersection(VAddr(UInt64(vaddr)), VAddr(UInt64(vaddr) + 1)) {
                    vma.pointee = World.vma(found)
                }
                return ret
            }
        }

    static let gupRun:
        @convention(c) (
            UnsafeMutableRawPointer?, Int32, UnsafeMutablePointer<UInt>?, UnsafeMutablePointer<UInt>?, UnsafeMutablePointer<UInt>?
        ) ->
            Int32 = { p, write, vpn, end, pfn in
                withHost(p) { k in
                    guard let run = k.gup_run(write: write != 0) else { return 0 }
                    vpn?.pointee = UInt(run.vpn)
                    end?.pointee = UInt(run.end)
                    pfn?.pointee = UInt(run.pfn.rawValue)
                    return 1
                }
            }

    static let gupRunTake: @convention(c) (UnsafeMutableRawPointer?, UInt) -> Void = { p, n in
        withHost(p) { $0.gup_run_take(Int(n)) }
    }

    static let findVMAIntersection: @convention(c) (UnsafeMutableRawPointer?, UInt, UInt, UnsafeMutablePointer<pinreplay_vma>?) -> Int32 = {
        p, start, end, out in
        withHost(p) { k in
            guard let found = k.find_vma_intersection(k.mm, VAddr(UInt64(start)), VAddr(UInt64(end))) else {
                return 0
            }
            out?.pointee = World.vma(found)
            return 1
        }
    }

    /// A VMA as world.h describes it.
    static func vma(_ v: VMA) -> pinreplay_vma {
        pinreplay_vma(start: UInt(v.start.rawValue), end: UInt(v.end.rawValue), flags: vm_flags(v), pgoff: UInt(v.pgoff))
    }

    static let pfnClassStretch: @convention(c) (UnsafeMutableRawPointer?, UInt, UnsafeMutablePointer<UInt>?) -> Int32 = {
        p, pfn, end in
        let stretch = withHost(p) { $0.phys.classStretch(UInt64(pfn)) }
        end?.pointee = UInt(clamping: stretch.end)
        switch stretch.cls {
        case .ram: return Int32(PINREPLAY_PFN_RAM.rawValue)
        case .reserved: return Int32(PINREPLAY_PFN_RESERVED.rawValue)
        case .mmio: return Int32(PINREPLAY_PFN_MMIO.rawValue)
        }
    }

    static let putPages: @convention(c) (UnsafeMutableRawPointer?, UInt, UInt) -> Void = { p, pfn, n in
        withHost(p) { $0.drop_refs(PFN(UInt64(pfn)), UInt64(n)) }
    }

    static let pinUserPages: @convention(c) (UnsafeMutableRawPointer?, UInt, UInt, Int32, UnsafeMutablePointer<UInt>?) -> Int = {
        p, vaddr, nr, write, pfns in
        withHost(p) { k in
            let mm = k.mm
            guard let pfns else { return -EFAULT }
            return pfns.withMemoryRebound(to: PFN.self, capacity: Int(nr)) { pages in
                k.pin_user_pages_remote(mm, VAddr(UInt64(vaddr)), Int(nr), write: write != 0, pages)
            }
        }
    }

    static let unpinUserPageRange: @convention(c) (UnsafeMutableRawPointer?, UInt, UInt, Int32) -> Void = { p, pfn, npage, dirty in
        withHost(p) { $0.unpin_user_page_range_dirty_lock(PFN(UInt64(pfn)), Int(npage), dirty != 0 ? .IOMMU_WRITE : []) }
    }

    static let followPfnmap: @convention(c) (UnsafeMutableRawPointer?, UInt, UInt, UnsafeMutablePointer<pinreplay_pfnmap>?) -> Int32 = {
        p, vaddr, vm_flags, out in
        // Only io and pfnmap matter to the walk; the engine's VMA carries them.
        var flags: VMAFlags = []
        if vm_flags & UInt(PINREPLAY_VM_IO) != 0 { flags.insert(.io) }
        if vm_flags & UInt(PINREPLAY_VM_PFNMAP) != 0 { flags.insert(.pfnmap) }
        return pfnmap(withHost(p) { $0.follow_pfnmap_start(flags: flags, VAddr(UInt64(vaddr))) }, out)
    }

    static let followPte: @convention(c) (UnsafeMutableRawPointer?, UInt, UnsafeMutablePointer<pinreplay_pfnmap>?) -> Int32 = {
        p, vaddr, out in
        // The kernel's follow_pte() takes the mm, not a VMA: the world finds it (uncounted).
        let found = withHost(p) { k in
            k.mm.findVMAIntersection(VAddr(UInt64(vaddr)), VAddr(UInt64(vaddr) + 1)).flatMap { k.follow_pte($0, VAddr(UInt64(vaddr))) }
        }
        return pfnmap(found, out)
    }

    /// What world.h's page-table callbacks answer for `found`.
    static func pfnmap(_ found: Host.PfnmapArgs?, _ out: UnsafeMutablePointer<pinreplay_pfnmap>?) -> Int32 {
        guard let found else { return Int32(-EINVAL) }
        out?.pointee = pinreplay_pfnmap(pfn: UInt(found.pfn.rawValue), addr_mask: UInt(found.addr_mask), writable: found.writable ? 1 : 0)
        return 0
    }

    static let fixupUserFault: @convention(c) (UnsafeMutableRawPointer?, UInt, Int32) -> Int32 = { p, vaddr, write in
        withHost(p) { k in
            let mm = k.mm
            return Int32(k.fixup_user_fault(mm, VAddr(UInt64(vaddr)), write: write != 0))
        }
    }

    static let dmaPins:
        @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<pinreplay_pin>?, Int) -> Int = {
            p, handle, pins, cap in
            // The handle is the dma passed in by `CEngine.call`.
            let dma = Unmanaged<VFIODma>.fromOpaque(handle.unsafelyUnwrapped).takeUnretainedValue()
            if dma.pfn_list.isEmpty { return 0 }
            for (i, iova) in dma.pfn_list.keys.sorted().prefix(cap).enumerated() {
                guard let vpfn = dma.pfn_list[iova] else { continue }
                pins?[i] = pinreplay_pin(iova: iova, pfn: UInt(vpfn.pfn.rawValue), ref_count: UInt32(clamping: vpfn.ref_count))
            }
            return dma.pfn_list.count
        }

    /// The kernel's `vm_flags` bits for a VMA.
    static func vm_flags(_ vma: VMA) -> UInt {
        var f: UInt = 0
        if vma.read { f |= UInt(PINREPLAY_VM_READ) }
        if vma.write { f |= UInt(PINREPLAY_VM_WRITE) }
        if vma.exec { f |= UInt(PINREPLAY_VM_EXEC) }
        if vma.flags.contains(.shared) { f |= UInt(PINREPLAY_VM_SHARED) }
        if vma.flags.contains(.pfnmap) { f |= UInt(PINREPLAY_VM_PFNMAP) }
        if vma.flags.contains(.io) { f |= UInt(PINREPLAY_VM_IO) }
        if vma.hugetlbSize != 0 { f |= UInt(PINREPLAY_VM_HUGETLB) }
        if vma.flags.contains(.mixedmap) { f |= UInt(PINREPLAY_VM_MIXEDMAP) }
        if vma.flags.contains(.hugepage) { f |= UInt(PINREPLAY_VM_HUGEPAGE) }
        return f
    }
}

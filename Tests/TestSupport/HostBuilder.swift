import VFIOEngines
import VFIOModel

/// Shorthand for building a simulated host in tests.
public enum TestHost {
    /// A host for `engineName` (canonical name or alias).
    public static func make(_ engineName: String) -> Host {
        guard let engine = Engines.named(engineName) else {
            preconditionFailure("no engine \(engineName)")
        }
        return Host(engine: engine)
    }

    /// The three seed engines, by canonical name.
    public static let seedEngines = ["v4.16", "rfc-v1", "v4.17-rc1"]
}

extension Host {
    /// Declares an anonymous private VMA of `pages` pages at `start`.
    public func anon(_ start: VAddr, pages: UInt64) {
        mm.mmap(VMA(start: start, end: start + pages * PAGE_SIZE))
    }

    /// A vfio-pci style BAR mmap: `io pfnmap linear` at host pfn `pgoff`.
    public func bar(_ start: VAddr, pages: UInt64, pgoff: UInt64, linear: Bool = true) {
        mm.mmap(
            VMA(
                start: start, end: start + pages * PAGE_SIZE,
                flags: linear ? [.io, .pfnmap, .linear] : [.io, .pfnmap], pgoff: pgoff))
    }

    /// `map` with prot spelled as in the trace form.
    public func map(_ iova: UInt64, _ vaddr: UInt64, _ size: UInt64, _ prot: String = "rw") -> RequestOutcome {
        var p = Prot()
        if prot.contains("r") { p.insert(.IOMMU_READ) }
        if prot.contains("w") { p.insert(.IOMMU_WRITE) }
        return vfio_dma_do_map(IOVA(iova), VAddr(vaddr), size, p)
    }

    public func unmap(_ iova: UInt64, _ size: UInt64) -> RequestOutcome {
        vfio_dma_do_unmap(IOVA(iova), size)
    }

    /// Violations so far, with their events.
    public func violationsNow() -> [Violation] { takeViolations().map(\.violation) }
}

/// `[iova, pfn, npage]` as the jsonl form writes it.
public func chunk(_ iova: UInt64, _ pfn: UInt64, _ npage: UInt64) -> Chunk {
    Chunk(iova: IOVA(iova), pfn: PFN(pfn), npage: npage)
}

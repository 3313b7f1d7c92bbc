// Basic kernel vocabulary: page geometry, frame numbers, addresses, protections, errno values.

/// log2 of the page size; only 4 KiB pages are simulated (SPEC.md §5: `page_shift 12`).
public let PAGE_SHIFT: UInt64 = 12
/// The page size in bytes.
public let PAGE_SIZE: UInt64 = 1 << PAGE_SHIFT
/// Mask of the in-page offset bits (`PAGE_SIZE - 1`).
public let PAGE_OFFSET_MASK: UInt64 = PAGE_SIZE - 1

/// A physical page frame number.
public struct PFN: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(integerLiteral value: UInt64) { self.rawValue = value }

    @inlinable public static func < (l: PFN, r: PFN) -> Bool { l.rawValue < r.rawValue }
    /// The pfn `n` frames further on; wraps as the kernel's `unsigned long` does.
    @inlinable public static func + (l: PFN, n: Int) -> PFN {
        PFN(l.rawValue &+ UInt64(bitPattern: Int64(n)))
    }
    @inlinable public static func += (l: inout PFN, n: Int) { l = l + n }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// A process virtual address.
public struct VAddr: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(integerLiteral value: UInt64) { self.rawValue = value }

    @inlinable public static func < (l: VAddr, r: VAddr) -> Bool { l.rawValue < r.rawValue }
    @inlinable public static func + (l: VAddr, bytes: UInt64) -> VAddr { VAddr(l.rawValue &+ bytes) }
    @inlinable public static func += (l: inout VAddr, bytes: UInt64) { l = l + bytes }
    @inlinable public static func - (l: VAddr, r: VAddr) -> UInt64 { l.rawValue &- r.rawValue }
    /// The virtual page number.
    @inlinable public var vpn: UInt64 { rawValue >> PAGE_SHIFT }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// An I/O virtual address, as the device sees it.
public struct IOVA: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(integerLiteral value: UInt64) { self.rawValue = value }

    @inlinable public static func < (l: IOVA, r: IOVA) -> Bool { l.rawValue < r.rawValue }
    @inlinable public static func + (l: IOVA, bytes: UInt64) -> IOVA { IOVA(l.rawValue &+ bytes) }
    @inlinable public static func += (l: inout IOVA, bytes: UInt64) { l = l + bytes }
    @inlinable public static func - (l: IOVA, r: IOVA) -> UInt64 { l.rawValue &- r.rawValue }
    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// IOMMU protection bits of a DMA mapping (`IOMMU_READ`, `IOMMU_WRITE`), from the device's view.
public struct Prot: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The device may read (`VFIO_DMA_MAP_FLAG_READ`).
    @inlinable public static var IOMMU_READ: Prot { Prot(rawValue: 1) }
    /// The device may write (`VFIO_DMA_MAP_FLAG_WRITE`).
    @inlinable public static var IOMMU_WRITE: Prot { Prot(rawValue: 2) }
}

// Linux asm-generic errno values, hard-coded: traces and reports must not depend on the host's
// <errno.h>. Engines return them negated, as the kernel does.
public let EPERM = 1
public let ESRCH = 3
public let EINTR = 4
public let E2BIG = 7
public let ENOMEM = 12
public let EACCES = 13
public let EFAULT = 14
public let EBUSY = 16
public let EEXIST = 17
public let ENODEV = 19
public let EINVAL = 22
public let ENOSPC = 28
public let EOPNOTSUPP = 95

/// The symbolic name of a (positive) errno value, for reports.
public func errnoName(_ errno: Int) -> String {
    switch errno {
    case EPERM: "EPERM"
    case ESRCH: "ESRCH"
    case EINTR: "EINTR"
    case E2BIG: "E2BIG"
    case ENOMEM: "ENOMEM"
    case EACCES: "EACCES"
    case EFAULT: "EFAULT"
    case EBUSY: "EBUSY"
    case EEXIST: "EEXIST"
    case ENODEV: "ENODEV"
    case EINVAL: "EINVAL"
    case ENOSPC: "ENOSPC"
    case EOPNOTSUPP: "EOPNOTSUPP"
    default: "E\(errno)"
    }
}

/// A return value in the kernel's "count or -errno" convention, spelled for a reader.
public func retName(_ ret: Int) -> String {
    ret < 0 ? "-\(errnoName(-ret))" : String(ret)
}

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
    /// The value `rawValue`, unlabelled.
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
    /// The value `rawValue`, unlabelled.
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
    /// The value `rawValue`, unlabelled.
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

/// A Linux errno, with Linux's (asm-generic) values and names, hard-coded: traces and reports
/// must not depend on the host's <errno.h>, and one type keeps Glibc's constants of the same
/// names out of the way. Engines and the container return it negated, as the kernel does
/// (`return -ENOMEM`); a fault carries it through `Result`.
public struct KErrno: Error, Hashable, Sendable, CustomStringConvertible {
    /// The positive value.
    public let value: Int

    /// Only a value: the constants are statically initialized, free to use on any path.
    @inlinable public init(value: Int) { self.value = value }

    /// Operation not permitted.
    public static let EPERM = KErrno(value: 1)
    /// No such process.
    public static let ESRCH = KErrno(value: 3)
    /// Interrupted system call.
    public static let EINTR = KErrno(value: 4)
    /// Argument list too long.
    public static let E2BIG = KErrno(value: 7)
    /// Cannot allocate memory.
    public static let ENOMEM = KErrno(value: 12)
    /// No such file or directory (iommufd: no area there).
    public static let ENOENT = KErrno(value: 2)
    /// Permission denied.
    public static let EACCES = KErrno(value: 13)
    /// Bad address.
    public static let EFAULT = KErrno(value: 14)
    /// Device or resource busy.
    public static let EBUSY = KErrno(value: 16)
    /// File exists.
    public static let EEXIST = KErrno(value: 17)
    /// No such device.
    public static let ENODEV = KErrno(value: 19)
    /// Invalid argument.
    public static let EINVAL = KErrno(value: 22)
    /// No space left on device.
    public static let ENOSPC = KErrno(value: 28)
    /// Value too large for defined data type.
    public static let EOVERFLOW = KErrno(value: 75)
    /// Operation not supported.
    public static let EOPNOTSUPP = KErrno(value: 95)

    /// The symbolic name, `ENOMEM`; `E` and the value for one not listed here.
    public var name: String {
        switch value {
        case 1: "EPERM"
        case 2: "ENOENT"
        case 3: "ESRCH"
        case 4: "EINTR"
        case 7: "E2BIG"
        case 12: "ENOMEM"
        case 13: "EACCES"
        case 14: "EFAULT"
        case 16: "EBUSY"
        case 17: "EEXIST"
        case 19: "ENODEV"
        case 22: "EINVAL"
        case 28: "ENOSPC"
        case 75: "EOVERFLOW"
        case 95: "EOPNOTSUPP"
        default: "E\(value)"
        }
    }

    public var description: String { name }
}

/// The kernel's negative return: `-ENOMEM` is -12.
@inlinable public prefix func - (e: KErrno) -> Int { -e.value }

// The kernel's spellings, for the code that mirrors it.
/// `KErrno.EPERM`, spelt as kernel code spells it.
public let EPERM = KErrno.EPERM
/// `KErrno.ESRCH`, spelt as kernel code spells it.
public let ESRCH = KErrno.ESRCH
/// `KErrno.EINTR`, spelt as kernel code spells it.
public let EINTR = KErrno.EINTR
/// `KErrno.E2BIG`, spelt as kernel code spells it.
public let E2BIG = KErrno.E2BIG
/// `KErrno.ENOMEM`, spelt as kernel code spells it.
public let ENOMEM = KErrno.ENOMEM
/// `KErrno.ENOENT`, spelt as kernel code spells it.
public let ENOENT = KErrno.ENOENT
/// `KErrno.EACCES`, spelt as kernel code spells it.
public let EACCES = KErrno.EACCES
/// `KErrno.EFAULT`, spelt as kernel code spells it.
public let EFAULT = KErrno.EFAULT
/// `KErrno.EBUSY`, spelt as kernel code spells it.
public let EBUSY = KErrno.EBUSY
/// `KErrno.EEXIST`, spelt as kernel code spells it.
public let EEXIST = KErrno.EEXIST
/// `KErrno.ENODEV`, spelt as kernel code spells it.
public let ENODEV = KErrno.ENODEV
/// `KErrno.EINVAL`, spelt as kernel code spells it.
public let EINVAL = KErrno.EINVAL
/// `KErrno.ENOSPC`, spelt as kernel code spells it.
public let ENOSPC = KErrno.ENOSPC
/// `KErrno.EOVERFLOW`, spelt as kernel code spells it.
public let EOVERFLOW = KErrno.EOVERFLOW
/// `KErrno.EOPNOTSUPP`, spelt as kernel code spells it.
public let EOPNOTSUPP = KErrno.EOPNOTSUPP

/// A return value in the kernel's "count or -errno" convention, spelled for a reader.
public func retName(_ ret: Int) -> String {
    ret < 0 ? "-\(KErrno(value: -ret).name)" : String(ret)
}

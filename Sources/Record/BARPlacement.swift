import Foundation
import TraceFormat

/// The memory BARs an `lspci -vv` listing shows, per device: what a bug report carries of
/// where a device's BARs live, on the host (physical addresses) or in the guest.
public struct LspciBARs: Sendable {
    /// One `Region N: Memory at ADDR (...) [size=S]` line.
    public struct Region: Equatable, Sendable {
        /// A region from its fields.
        public init(bar: Int, address: UInt64, size: UInt64) {
            self.bar = bar
            self.address = address
            self.size = size
        }
        /// The BAR index.
        public var bar: Int
        /// Its address.
        public var address: UInt64
        /// Its size in bytes.
        public var size: UInt64
    }

    /// Regions by device (`84:00.0`, as lspci spells it, or "" before any device line).
    public var devices: [String: [Region]] = [:]

    /// Parses lspci output as pasted (indentation, quoting and text around it are skipped).
    /// A Region line that does not read is an error naming the file and line.
    public init(_ text: String, file: String) throws(TraceError) {
        var device = ""
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = PastedLog.unquoted(raw)
            let words = line.split(separator: " ")
            if let first = words.first, Self.isBDF(first) { device = Self.shortBDF(first) }
            // `lspci -s BDF -vvv` as typed before the listing names the device too.
            if words.first == "lspci", let s = words.firstIndex(of: "-s"), s + 1 < words.count, Self.isBDF(words[s + 1]) {
                device = Self.shortBDF(words[s + 1])
            }
            guard let r = line.range(of: "Region "), line[r.upperBound...].contains(": Memory at ") else { continue }
            func bad(_ what: String) -> TraceError {
                TraceError(file: file, .line(i + 1), .syntax, "lspci Region line: \(what): '\(raw.prefix(100))'")
            }
            let rest = line[r.upperBound...]
            guard let colon = rest.firstIndex(of: ":"), let bar = Int(rest[..<colon]) else { throw bad("no BAR index") }
            guard let at = rest.range(of: "Memory at ") else { throw bad("no address") }
            let addrWord = rest[at.upperBound...].prefix { $0.isHexDigit }
            guard let address = UInt64(addrWord, radix: 16) else { throw bad("no hex address") }
            guard let sz = rest.range(of: "[size="), let end = rest[sz.upperBound...].firstIndex(of: "]"),
                let size = parseTraceNumber(String(rest[sz.upperBound..<end]))
            else { throw bad("no [size=...]") }
            devices[device, default: []].append(Region(bar: bar, address: address, size: size))
        }
    }

    /// `84:00.0` or `0000:84:00.0`.
    static func isBDF(_ w: Substring) -> Bool {
        let parts = w.split(separator: ":")
        guard parts.count == 2 || parts.count == 3, let last = parts.last, last.contains(".") else { return false }
        return w.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }

    /// The bus:device.function part, without the PCI domain, normalized (`84:00.00` is `84:00.0`).
    static func shortBDF<S: StringProtocol>(_ w: S) -> String {
        let parts = w.split(separator: ":").suffix(2)
        guard parts.count == 2, let bus = UInt8(parts.first ?? "", radix: 16) else { return parts.joined(separator: ":") }
        let devfn = parts[parts.startIndex + 1].split(separator: ".")
        guard devfn.count == 2, let dev = UInt8(devfn[0], radix: 16), let fn = UInt8(devfn[1], radix: 16) else {
            return parts.joined(separator: ":")
        }
        return String(format: "%02x:%02x.%x", bus, dev, fn)
    }

    /// The regions of `bdf`, or of the only device listed (a pasted excerpt often lacks its
    /// device line).
    func regions(of bdf: String) -> [Region]? {
        if let r = devices[Self.shortBDF(bdf)] { return r }
        return devices.count == 1 ? devices.values.first : nil
    }
}

/// Where a BAR lives, as `--bar BDF:N=HOST[@GUEST]` says: its host physical address and, when
/// given, its guest address (else the guest's lspci gives it).
public struct BARLocation: Equatable, Sendable {
    /// Host physical address (what the IOMMU maps to).
    public var host: UInt64?
    /// Guest physical address (the iova QEMU maps it at).
    public var guest: UInt64?
    /// A location from its parts.
    public init(host: UInt64?, guest: UInt64?) {
        self.host = host
        self.guest = guest
    }

    /// Parses `BDF:N=HOST[@GUEST]` (hex addresses with or without 0x) into its key
    /// (`84:00.0:0`) and location; nil when it does not read.
    public static func parse(_ s: String) -> (key: String, location: BARLocation)? {
        let kv = s.split(separator: "=", maxSplits: 1)
        guard kv.count == 2, let colon = kv[0].lastIndex(of: ":"), let bar = Int(kv[0][kv[0].index(after: colon)...]),
            LspciBARs.isBDF(kv[0][..<colon])
        else { return nil }
        func addr(_ w: Substring) -> UInt64? { UInt64(w.hasPrefix("0x") ? w.dropFirst(2) : w, radix: 16) }
        let parts = kv[1].split(separator: "@", omittingEmptySubsequences: false)
        guard let host = addr(parts[0]), parts.count <= 2 else { return nil }
        var guest: UInt64?
        if parts.count == 2 {
            guard let g = addr(parts[1]) else { return nil }
            guest = g
        }
        return ("\(LspciBARs.shortBDF(kv[0][..<colon])):\(bar)", BARLocation(host: host, guest: guest))
    }
}

/// A BAR mmap placed in the recorded address space: its VMA and how it was found.
public struct PlacedBAR: Equatable, Sendable {
    /// The VMA, `[start, end)`.
    public var start: UInt64
    public var end: UInt64
    /// Host physical address of the VMA's first byte.
    public var hostPhys: UInt64
    /// What placed it, for the trace's marks.
    public var why: String
}

/// Places the BAR mmaps of a QEMU log in the host address space: each mmap's host physical
/// address from the host's lspci (or `--bar`), its guest address from the guest's lspci, the
/// log's own config writes to the BAR (or `--bar`), and its host virtual address from the
/// listener's region_add of a range inside it.
/// Mmaps it cannot place stay RAM; the second result says which, one line each.
public func placeBARs(
    _ log: QEMUTraceLog, host: LspciBARs?, guest: LspciBARs?, given: [String: BARLocation]
) -> (placed: [PlacedBAR], unplaced: [String]) {
    var placed: [PlacedBAR] = []
    var unplaced: [String] = []
    for m in log.barMmaps {
        let name = "\(m.bdf) BAR \(m.bar)"
        let given = given["\(LspciBARs.shortBDF(m.bdf)):\(m.bar)"]
        let hostAddress = given?.host ?? host?.regions(of: m.bdf)?.first(where: { $0.bar == m.bar })?.address
        // The guest numbers the device otherwise: its listing must hold one device besides the
        // host's (a bug report often pastes both listings together).
        let others = guest?.devices.filter { $0.key != LspciBARs.shortBDF(m.bdf) }
        let guestRegions = others?.count == 1 ? others?.values.first : nil
        let guestAddress =
            given?.guest ?? guestRegions?.first(where: { $0.bar == m.bar })?.address ?? log.guestBARAddress(m.bdf, m.bar)
        guard let hostAddress, let guestAddress else {
            unplaced.append("\(name) stays RAM: give --lspci and --guest-lspci (or --bar BDF:N=HOST@GUEST) to place it")
            continue
        }
        let location = (host: hostAddress, guest: guestAddress)
        // The listener's map of a range inside this mmap gives the mmap's host virtual address.
        let guestStart = location.guest &+ m.offset
        var vaddr: UInt64?
        for s in log.statements {
            guard case let .map(iova, v, size, _) = s, iova >= guestStart, iova &+ size <= guestStart &+ m.size else { continue }
            vaddr = v &- (iova &- guestStart)
            break
        }
        guard let vaddr else {
            unplaced.append("\(name): no map of guest \(hex(guestStart)) in the log, so its host address is unknown")
            continue
        }
        placed.append(
            PlacedBAR(
                start: vaddr, end: vaddr &+ m.size, hostPhys: location.host &+ m.offset,
                why: "\(name) at host \(hex(location.host &+ m.offset)), guest \(hex(guestStart)), \(m.size >> 10) KiB"))
    }
    return (placed, unplaced)
}

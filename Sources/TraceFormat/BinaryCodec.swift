import VFIOModel

// The record layer of the binary form (docs/FORMAT.md): `type` varint, `length` varint, then
// `length` payload bytes. Addresses are zigzag deltas against a register of their kind (vaddr,
// iova, pfn) that each record leaves at the end of the range it named, so a trace laid out in
// address order encodes every address as a zero delta.

/// Record types of format version 1. Readers skip types they do not know.
enum RecordType: UInt64 {
    case pageShift = 1
    case memlock = 2
    case capIpcLock = 3
    case lockedVM = 4
    case disableHugepages = 5
    case pfns = 6
    case zeroPage = 7
    case pool = 8
    case vma = 9
    case munmap = 10
    case pte = 11
    case touch = 12
    case map = 13
    case unmap = 14
    case pin = 15
    case unpin = 16
    case mark = 17
    case thp = 18
    case dmaEntryLimit = 19
    case unmapAll = 20
    case userLockedVM = 21
}

/// The delta registers shared by the encoder and decoder.
struct DeltaRegisters {
    var vaddr: UInt64 = 0
    var iova: UInt64 = 0
    var pfn: UInt64 = 0
}

/// Largest payload a reader accepts: a VMA name or a mark is far smaller.
let maxRecordPayload = 1 << 20

// MARK: - Encoding

struct RecordEncoder {
    private var reg = DeltaRegisters()
    private var payload: [UInt8] = []

    init() { payload.reserveCapacity(64) }

    /// Appends the record for `s` to `out`.
    mutating func encode(_ s: Statement, into out: inout [UInt8]) {
        payload.removeAll(keepingCapacity: true)
        let type: RecordType
        switch s {
        case .pageShift(let v):
            type = .pageShift
            putVarint(v)
        case .memlock(let bytes):
            type = .memlock
            payload.append(bytes == nil ? 0 : 1)
            if let bytes { putVarint(bytes) }
        case .capIpcLock(let y):
            type = .capIpcLock
            payload.append(y ? 1 : 0)
        case .userLockedVM(let n):
            type = .userLockedVM
            putVarint(n)
        case .lockedVM(let n):
            type = .lockedVM
            putVarint(n)
        case .disableHugepages(let y):
            type = .disableHugepages
            payload.append(y ? 1 : 0)
        case .thp(let t):
            type = .thp
            payload.append(t.rawValue)
        case .dmaEntryLimit(let n):
            type = .dmaEntryLimit
            putVarint(n)
        case let .pfns(kind, start, count):
            type = .pfns
            payload.append(kind.rawValue)
            putDelta(start, \.pfn)
            putVarint(count)
            reg.pfn = start &+ count
        case .zeroPage(let pfn):
            type = .zeroPage
            putDelta(pfn, \.pfn)
            reg.pfn = pfn &+ 1
        case let .pool(start, count):
            type = .pool
            putDelta(start, \.pfn)
            putVarint(count)
            reg.pfn = start &+ count
        case .vma(let v):
            type = .vma
            putDelta(v.start.rawValue, \.vaddr)
            putVarint((v.end - v.start) >> 12)
            payload.append((v.read ? 1 : 0) | (v.write ? 2 : 0) | (v.exec ? 4 : 0))
            payload.append(v.flags.rawValue)
            putVarint(v.hugetlbSize == 0 ? 0 : UInt64(v.hugetlbSize.trailingZeroBitCount))
            putVarint(v.pgoff)
            putText(v.name)
            reg.vaddr = v.end.rawValue
        case let .munmap(start, end):
            type = .munmap
            putDelta(start, \.vaddr)
            putVarint((end - start) >> 12)
            reg.vaddr = end
        case let .pte(vaddr, count, pfn, ro, leaf):
            type = .pte
            putDelta(vaddr, \.vaddr)
            putVarint(count)
            payload.append(pfn == nil ? 0 : ro ? 2 : 1)
            if let pfn {
                putDelta(pfn, \.pfn)
                reg.pfn = pfn &+ count
                // Appended field, omitted for 4 KiB: older readers ignore it.
                if leaf != .k4 { putVarint(UInt64(leaf.rawValue)) }
            }
            reg.vaddr = vaddr &+ count << 12
        case let .touch(vaddr, count, write):
            type = .touch
            putDelta(vaddr, \.vaddr)
            putVarint(count)
            payload.append(write ? 1 : 0)
            reg.vaddr = vaddr &+ count << 12
        case let .map(iova, vaddr, size, access):
            type = .map
            putDelta(iova, \.iova)
            putDelta(vaddr, \.vaddr)
            putVarint(size)
            payload.append(access.rawValue)
            reg.iova = iova &+ size
            reg.vaddr = vaddr &+ size
        case let .unmap(iova, size):
            type = .unmap
            putDelta(iova, \.iova)
            putVarint(size)
            reg.iova = iova &+ size
        case let .unmapAll(iova, size):
            type = .unmapAll
            putVarint(iova)
            putVarint(size)
        case let .pin(iova, count, access):
            type = .pin
            putDelta(iova, \.iova)
            putVarint(count)
            payload.append(access.rawValue)
            reg.iova = iova &+ count << 12
        case let .unpin(iova, count):
            type = .unpin
            putDelta(iova, \.iova)
            putVarint(count)
            reg.iova = iova &+ count << 12
        case .mark(let text):
            type = .mark
            putText(text)
        }
        appendVarint(type.rawValue, to: &out)
        appendVarint(UInt64(payload.count), to: &out)
        out.append(contentsOf: payload)
    }

    private mutating func putVarint(_ v: UInt64) { appendVarint(v, to: &payload) }

    private mutating func putDelta(_ v: UInt64, _ register: WritableKeyPath<DeltaRegisters, UInt64>) {
        let d = Int64(bitPattern: v &- reg[keyPath: register])
        putVarint(UInt64(bitPattern: (d << 1) ^ (d >> 63)))
        reg[keyPath: register] = v
    }

    private mutating func putText(_ t: TraceText) {
        let s = t.string
        putVarint(UInt64(s.utf8.count))
        payload.append(contentsOf: s.utf8)
    }
}

/// LEB128, little-endian groups of seven bits.
func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
    var v = value
    while v >= 0x80 {
        out.append(UInt8(truncatingIfNeeded: v) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
}

// MARK: - Decoding

/// Reads fields out of one record's payload; running short is an error.
///
/// The payload must be followed by at least `PayloadReader.slack` readable bytes (the decoder's
/// content buffer keeps them): a varint is read as one 8-byte load whatever its length.
struct PayloadReader {
    /// Bytes readable past the end of any payload.
    static let slack = 8

    let bytes: UnsafeRawBufferPointer
    private let base: UnsafeRawPointer
    var pos = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        base = UnsafeRawPointer(bytes.baseAddress.unsafelyUnwrapped)
    }

    /// Whether every byte has been read: appended fields are optional.
    var isAtEnd: Bool { pos >= bytes.count }

    mutating func byte() throws(StatementProblem) -> UInt8 {
        guard pos < bytes.count else { throw StatementProblem("record payload ends inside a field") }
        defer { pos += 1 }
        return bytes[pos]
    }

    /// LEB128. A one-byte value is a load and a test; up to eight bytes are one load, a
    /// search for the stop bit and three steps that squeeze out the continuation bits; longer
    /// ones, and fields that run past the payload, take the byte loop.
    @inline(__always)
    mutating func varint() throws(StatementProblem) -> UInt64 {
        let w = UInt64(littleEndian: (base + pos).loadUnaligned(as: UInt64.self))
        if w & 0x80 == 0, pos < bytes.count {
            pos &+= 1
            return w & 0x7f
        }
        let stops = ~w & 0x8080_8080_8080_8080
        if stops != 0 {
            let n = (stops.trailingZeroBitCount &+ 1) &>> 3
            if n <= bytes.count &- pos {
                pos &+= n
                var x = w & (UInt64.max &>> UInt64(64 &- 8 &* n))
                x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) &>> 1)
                x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) &>> 2)
                return (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) &>> 4)
            }
        }
        return try longVarint()
    }

    private mutating func longVarint() throws(StatementProblem) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var p = pos
        while p < bytes.count {
            let b = bytes[p]
            p += 1
            if shift == 63 && b > 1 { break }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                pos = p
                return result
            }
            shift += 7
            if shift > 63 { break }
        }
        throw StatementProblem(p == bytes.count ? "record payload ends inside a field" : "varint past 64 bits")
    }

    @inline(__always)
    mutating func delta(_ reg: inout UInt64) throws(StatementProblem) -> UInt64 {
        let z = try varint()
        let d = Int64(bitPattern: (z >> 1) ^ (0 &- (z & 1)))
        reg = reg &+ UInt64(bitPattern: d)
        return reg
    }

    mutating func bool() throws(StatementProblem) -> Bool {
        switch try byte() {
        case 0: return false
        case 1: return true
        case let b: throw StatementProblem("boolean byte is \(b), not 0 or 1")
        }
    }

    mutating func text() throws(StatementProblem) -> TraceText {
        let n = try varint()
        guard n <= UInt64(bytes.count - pos) else { throw StatementProblem("string runs past its record") }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[pos..<pos + Int(n)])
        pos += Int(n)
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw StatementProblem("string is not valid UTF-8")
        }
        return TraceText(s)
    }

    @inline(__always)
    mutating func access(allowNone: Bool) throws(StatementProblem) -> Access {
        let b = try byte()
        guard b <= 3, allowNone || b != 0 else { throw StatementProblem("access byte \(b) is not valid here") }
        return Access(rawValue: b)
    }
}

struct RecordDecoder {
    private var reg = DeltaRegisters()

    /// Decodes one record of a type this version knows. Bytes past the fields this version
    /// knows are ignored: newer writers may append fields.
    @inline(__always)
    mutating func decode(_ type: RecordType, payload: UnsafeRawBufferPointer) throws(StatementProblem) -> Statement {
        var r = PayloadReader(payload)
        switch type {
        case .pageShift:
            return .pageShift(try r.varint())
        case .memlock:
            return .memlock(try r.bool() ? try r.varint() : nil)
        case .capIpcLock:
            return .capIpcLock(try r.bool())
        case .lockedVM:
            return .lockedVM(try r.varint())
        case .userLockedVM:
            return .userLockedVM(try r.varint())
        case .disableHugepages:
            return .disableHugepages(try r.bool())
        case .thp:
            let b = try r.byte()
            guard let t = THPMode(rawValue: b) else { throw StatementProblem("thp byte \(b) is unknown") }
            return .thp(t)
        case .dmaEntryLimit:
            return .dmaEntryLimit(try r.varint())
        case .pfns:
            let k = try r.byte()
            guard let kind = PfnClass(rawValue: k) else { throw StatementProblem("pfn class byte \(k) is unknown") }
            let start = try r.delta(&reg.pfn)
            let count = try r.varint()
            reg.pfn = start &+ count
            return .pfns(kind, start: start, count: count)
        case .zeroPage:
            let pfn = try r.delta(&reg.pfn)
            reg.pfn = pfn &+ 1
            return .zeroPage(pfn)
        case .pool:
            let start = try r.delta(&reg.pfn)
            let count = try r.varint()
            reg.pfn = start &+ count
            return .pool(start: start, count: count)
        case .vma:
            let start = try r.delta(&reg.vaddr)
            let end = try r.pageEnd(start)
            let perms = try r.byte()
            guard perms < 8 else { throw StatementProblem("VMA permission bits \(perms) are unknown") }
            let flags = try r.byte()
            guard flags < 64 else { throw StatementProblem("VMA flag bits \(flags) are unknown") }
            let hugeShift = try r.varint()
            guard hugeShift == 0 || (12...63).contains(hugeShift) else {
                throw StatementProblem("huge page shift \(hugeShift) is out of range")
            }
            let pgoff = try r.varint()
            let name = try r.text()
            reg.vaddr = end
            return .vma(
                VMASpec(
                    start: start, end: end, read: perms & 1 != 0, write: perms & 2 != 0, exec: perms & 4 != 0,
                    flags: VMAFlags(rawValue: flags), hugetlbSize: hugeShift == 0 ? 0 : 1 << hugeShift, pgoff: pgoff,
                    name: name))
        case .munmap:
            let start = try r.delta(&reg.vaddr)
            let end = try r.pageEnd(start)
            reg.vaddr = end
            return .munmap(start: start, end: end)
        case .pte:
            let vaddr = try r.delta(&reg.vaddr)
            let count = try r.varint()
            let kind = try r.byte()
            guard kind <= 2 else { throw StatementProblem("pte kind byte \(kind) is unknown") }
            var pfn: UInt64?
            var leaf = LeafSize.k4
            if kind != 0 {
                let p = try r.delta(&reg.pfn)
                reg.pfn = p &+ count
                pfn = p
                if !r.isAtEnd {
                    let shift = try r.varint()
                    guard let l = LeafSize(rawValue: UInt8(truncatingIfNeeded: shift)), UInt64(l.rawValue) == shift else {
                        throw StatementProblem("pte leaf shift \(shift) is not 12, 21 or 30")
                    }
                    leaf = l
                }
            }
            reg.vaddr = vaddr &+ count << 12
            return .pte(vaddr: vaddr, count: count, pfn: pfn, readOnly: kind == 2, leaf: leaf)
        case .touch:
            let vaddr = try r.delta(&reg.vaddr)
            let count = try r.varint()
            let write = try r.bool()
            reg.vaddr = vaddr &+ count << 12
            return .touch(vaddr: vaddr, count: count, write: write)
        case .map:
            let iova = try r.delta(&reg.iova)
            let vaddr = try r.delta(&reg.vaddr)
            let size = try r.varint()
            let access = try r.access(allowNone: true)
            reg.iova = iova &+ size
            reg.vaddr = vaddr &+ size
            return .map(iova: iova, vaddr: vaddr, size: size, access: access)
        case .unmap:
            let iova = try r.delta(&reg.iova)
            let size = try r.varint()
            reg.iova = iova &+ size
            return .unmap(iova: iova, size: size)
        case .unmapAll:
            return .unmapAll(iova: try r.varint(), size: try r.varint())
        case .pin:
            let iova = try r.delta(&reg.iova)
            let count = try r.varint()
            let access = try r.access(allowNone: false)
            reg.iova = iova &+ count << 12
            return .pin(iova: iova, count: count, access: access)
        case .unpin:
            let iova = try r.delta(&reg.iova)
            let count = try r.varint()
            reg.iova = iova &+ count << 12
            return .unpin(iova: iova, count: count)
        case .mark:
            return .mark(try r.text())
        }
    }
}

extension PayloadReader {
    /// A range length in pages, turned into the range's end address.
    mutating func pageEnd(_ start: UInt64) throws(StatementProblem) -> UInt64 {
        let pages = try varint()
        guard pages <= (UInt64.max - start) >> 12 else { throw StatementProblem("range length overflows") }
        return start + pages << 12
    }
}

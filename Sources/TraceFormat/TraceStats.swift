import VFIOModel

/// What `pinreplay stat` reports about a trace.
public struct TraceStats: Sendable {
    /// Text or binary.
    public var form: TraceForm
    /// Statements after the header.
    public var events = 0
    /// Statements per keyword.
    public var perKeyword: [String: Int] = [:]
    /// Bytes asked for by `map` requests, per access (`r`, `w`, `rw`, `-`).
    public var mappedBytes: [String: UInt64] = [:]
    /// Bytes the unmap requests name, summed.
    public var unmappedBytes: UInt64 = 0
    /// VMAs declared per kind (anon, shared, hugetlb, pfnmap, io, mixedmap): count and bytes.
    public var vmas: [String: (count: Int, bytes: UInt64)] = [:]
    /// Pages `touch` statements name, by access.
    public var pagesTouched: (read: UInt64, write: UInt64) = (0, 0)
    /// Pages `pte` statements set or clear.
    public var ptePages: UInt64 = 0
    /// The file's size, when it is a regular file.
    public var fileBytes: UInt64?
    /// Size of the canonical text form of the same statements.
    public var canonicalTextBytes: UInt64 = 0

    /// The VMA kinds `stat` counts, in its order.
    public static let vmaKinds = ["anon", "shared", "hugetlb", "mixedmap", "pfnmap", "io"]

    /// Reads the whole trace.
    public init(reader: TraceReader) throws(TraceError) {
        form = reader.form
        fileBytes = reader.fileSize
        canonicalTextBytes = UInt64(textHeader.utf8.count + 1)
        while let s = try reader.next() {
            add(s)
        }
    }

    /// The first of `vmaKinds`, from the most specific, that describes `v`.
    static func vmaKind(_ v: VMASpec) -> String {
        if v.flags.contains(.pfnmap) { return "pfnmap" }
        if v.flags.contains(.io) { return "io" }
        if v.flags.contains(.mixedmap) { return "mixedmap" }
        if v.hugetlbSize != 0 { return "hugetlb" }
        return v.flags.contains(.shared) ? "shared" : "anon"
    }

    private mutating func add(_ s: Statement) {
        events += 1
        perKeyword[s.keyword, default: 0] += 1
        canonicalTextBytes += UInt64(s.canonicalText.utf8.count + 1)
        switch s {
        case let .map(_, _, size, access): mappedBytes[access.keyword, default: 0] &+= size
        case let .unmap(_, size): unmappedBytes &+= size
        case .vma(let v):
            let kind = Self.vmaKind(v)
            let old = vmas[kind] ?? (0, 0)
            vmas[kind] = (old.count + 1, old.bytes &+ (v.end - v.start))
        case let .touch(_, count, write):
            if write { pagesTouched.write &+= count } else { pagesTouched.read &+= count }
        case let .pte(_, count, pfn, _, _):
            if pfn != nil { ptePages &+= count }
        default: break
        }
    }

    /// The report, one fact per line.
    public func render(file: String) -> String {
        var out = "\(file): \(form.rawValue) trace, \(events) events\n"
        out += "statements:\n"
        for k in Statement.keywords {
            if let n = perKeyword[k] { out += "  \(k.padded(18)) \(n)\n" }
        }
        out += "mapped bytes by access:\n"
        for a in ["r", "w", "rw", "-"] {
            if let b = mappedBytes[a] { out += "  \(a.padded(18)) \(b) (\(humanBytes(b)))\n" }
        }
        out += "  \("unmapped".padded(18)) \(unmappedBytes) (\(humanBytes(unmappedBytes)))\n"
        out += "VMAs by kind:\n"
        for k in Self.vmaKinds {
            if let v = vmas[k] { out += "  \(k.padded(18)) \(v.count) (\(humanBytes(v.bytes)))\n" }
        }
        out += "pages touched: \(pagesTouched.read) read, \(pagesTouched.write) write; pte pages set: \(ptePages)\n"
        if let fileBytes {
            out += "file: \(fileBytes) bytes; canonical text: \(canonicalTextBytes) bytes"
            if fileBytes > 0 && form == .binary {
                let ratio = Double(canonicalTextBytes) / Double(fileBytes)
                out += " (compression ratio \(formatFixed(ratio, 1)):1 against text)"
            }
            out += "\n"
        }
        return out
    }
}

extension String {
    /// The string padded with spaces on the right to `width` characters.
    public func padded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// `12.5 GiB`, `4 KiB`: binary units, one decimal where it helps.
public func humanBytes(_ b: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var v = Double(b)
    var u = 0
    while v >= 1024 && u < units.count - 1 {
        v /= 1024
        u += 1
    }
    return u == 0 ? "\(b) B" : "\(formatFixed(v, v == v.rounded() ? 0 : 1)) \(units[u])"
}

/// A fixed-point rendering that does not depend on the C locale.
public func formatFixed(_ v: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (v * scale).rounded()
    guard scaled.isFinite, abs(scaled) < 9e18 else { return "\(v)" }
    let n = Int64(scaled)
    let sign = n < 0 ? "-" : ""
    let a = n.magnitude
    let whole = a / UInt64(scale)
    if decimals == 0 { return "\(sign)\(whole)" }
    let frac = String(a % UInt64(scale))
    return "\(sign)\(whole)." + String(repeating: "0", count: decimals - frac.count) + frac
}

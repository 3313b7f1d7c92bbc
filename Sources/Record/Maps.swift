import TraceFormat

/// One line of `/proc/PID/maps`.
public struct MapsEntry: Equatable, Sendable {
    /// First address of the mapping.
    public var start: UInt64
    /// Address just past the mapping.
    public var end: UInt64
    /// The `r` permission.
    public var read: Bool
    /// The `w` permission.
    public var write: Bool
    /// The `x` permission.
    public var exec: Bool
    /// `s` in the permissions: a shared mapping.
    public var shared: Bool
    /// The offset column, in bytes.
    public var offset: UInt64
    /// The path or pseudo-path (`[heap]`, `anon_inode:[vfio-device]`), empty for anonymous.
    public var path: String
}

extension MapsEntry {
    /// The path of a BAR mmap inferred from a bug report (`InferredSpace`): a vfio-pci mapping
    /// whose offset column is the BAR's host physical address.
    public static let inferredBAR = "[inferred vfio-pci BAR]"
}

/// Parses `/proc/PID/maps` text; errors name the file and line.
public func parseMaps(_ text: String, file: String) throws(TraceError) -> [MapsEntry] {
    var out: [MapsEntry] = []
    for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
        let line = raw.trimmingSuffixBlanks
        if line.isEmpty { continue }
        func bad(_ what: String) -> TraceError {
            TraceError(file: file, .line(i + 1), .syntax, "not a maps line (\(what)): '\(line.prefix(80))'")
        }
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5 else { throw bad("fewer than five fields") }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16), end > start,
            start & 0xFFF == 0, end & 0xFFF == 0
        else { throw bad("address range") }
        let perms = Array(fields[1])
        guard perms.count == 4, "r-".contains(perms[0]), "w-".contains(perms[1]), "x-".contains(perms[2]), "ps".contains(perms[3])
        else { throw bad("permissions") }
        guard let offset = UInt64(fields[2], radix: 16) else { throw bad("offset") }
        let path = fields.count == 6 ? String(fields[5]).trimmingLeadingBlanks : ""
        out.append(
            MapsEntry(
                start: start, end: end, read: perms[0] == "r", write: perms[1] == "w", exec: perms[2] == "x",
                shared: perms[3] == "s", offset: offset, path: path))
    }
    return out
}

extension Substring {
    var trimmingSuffixBlanks: Substring {
        var s = self
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}

extension String {
    var trimmingLeadingBlanks: String { String(drop { $0 == " " || $0 == "\t" }) }
}

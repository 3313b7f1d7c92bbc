import VFIOModel

/// Parses the text form of SPEC.md §5 line by line. Comments and blank lines yield nothing;
/// every other line after `vptr-text 1` yields one statement (an event).
public struct TextParser {
    /// The file's name, for errors.
    public let file: String
    /// The line last given to `parse(line:)`, 1-based.
    public private(set) var lineNumber = 0
    private var sawHeader = false
    private var validator = StatementValidator()

    /// A parser before the header line of `file`.
    public init(file: String) { self.file = file }

    /// Whether the header line has been seen; a trace without one is empty or not a trace.
    public var isStarted: Bool { sawHeader }

    /// Parses the next line (without its newline).
    public mutating func parse(line raw: Substring) throws(TraceError) -> Statement? {
        var raw = raw
        let result = raw.withUTF8 { bytes in
            Result { () throws(TraceError) -> Statement? in try parse(bytes: bytes) }
        }
        return try result.get()
    }

    /// Parses the next line, as bytes (without its newline). Works on bytes throughout, so that
    /// a `#` is a comment whatever follows it and a CR is a CR, as the writer sees them.
    public mutating func parse(bytes line: UnsafeBufferPointer<UInt8>) throws(TraceError) -> Statement? {
        lineNumber += 1
        guard line.count <= Self.maxLine else {
            throw TraceError(file: file, .line(lineNumber), .syntax, "line longer than \(Self.maxLine) bytes")
        }
        guard line.allSatisfy({ $0 < 0x80 }) || String(validating: line, as: UTF8.self) != nil else {
            throw TraceError(file: file, .line(lineNumber), .syntax, "line is not valid UTF-8")
        }
        var end = line.firstIndex(of: UInt8(ascii: "#")) ?? line.count
        if end > 0, line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let tokens = Tokens(UnsafeBufferPointer(rebasing: line[..<end]))
        guard !tokens.isEmpty else { return nil }
        do throws(StatementProblem) {
            if !sawHeader {
                try parseHeader(tokens)
                sawHeader = true
                return nil
            }
            let statement = try parseStatement(tokens)
            try validator.check(statement)
            return statement
        } catch {
            throw TraceError(file: file, .line(lineNumber), .syntax, error.message)
        }
    }

    /// The longest line the reader takes, in bytes (newline excluded).
    public static let maxLine = 1 << 20

    /// Called after the last line: a file with no header is not a trace.
    public func finish() throws(TraceError) {
        if !sawHeader {
            throw TraceError(file: file, .file, .syntax, "no 'vptr-text 1' header: empty or not a text trace")
        }
    }

    private func parseHeader(_ t: Tokens) throws(StatementProblem) {
        guard t.count == 2, t[0] == "vptr-text" else {
            throw StatementProblem("first line must be 'vptr-text 1', not '\(t.joined)'")
        }
        guard t[1] == "1" else { throw StatementProblem("unsupported text trace version '\(t[1].string)' (this reader knows 1)") }
    }

    private func parseStatement(_ t: Tokens) throws(StatementProblem) -> Statement {
        let keyword = t[0].string
        switch keyword {
        case "page_shift":
            try t.arity(2)
            return .pageShift(try number(t[1]))
        case "memlock":
            try t.arity(2)
            return .memlock(t[1] == "unlimited" ? nil : try number(t[1]))
        case "cap_ipc_lock":
            try t.arity(2)
            return .capIpcLock(try yesNo(t[1]))
        case "locked_vm":
            try t.arity(2)
            return .lockedVM(try number(t[1]))
        case "user_locked_vm":
            try t.arity(2)
            return .userLockedVM(try number(t[1]))
        case "disable_hugepages":
            try t.arity(2)
            return .disableHugepages(try yesNo(t[1]))
        case "thp":
            try t.arity(2)
            guard let setting = THPMode.allCases.first(where: { $0.description == t[1].string }) else {
                throw StatementProblem("thp must be always, madvise or never, not '\(t[1].string)'")
            }
            return .thp(setting)
        case "dma_entry_limit":
            try t.arity(2)
            return .dmaEntryLimit(try number(t[1]))
        case "pfns":
            try t.arity(4)
            guard let kind = PfnClass.allCases.first(where: { $0.description == t[1].string }) else {
                throw StatementProblem("pfns class must be ram, reserved or mmio, not '\(t[1].string)'")
            }
            return .pfns(kind, start: try number(t[2]), count: try number(t[3]))
        case "zero_page":
            try t.arity(2)
            return .zeroPage(try number(t[1]))
        case "pool":
            try t.arity(3)
            return .pool(start: try number(t[1]), count: try number(t[2]))
        case "vma":
            return .vma(try parseVMA(t))
        case "munmap":
            try t.arity(3)
            return .munmap(start: try number(t[1]), end: try number(t[2]))
        case "pte":
            try t.arity(4, 6)
            let vaddr = try number(t[1])
            let count = try number(t[2])
            if t[3] == "none" {
                try t.arity(4)
                return .pte(vaddr: vaddr, count: count, pfn: nil, readOnly: false)
            }
            let pfn = try number(t[3])
            var i = 4
            let readOnly = i < t.count && t[i] == "ro"
            if readOnly { i += 1 }
            var leaf = LeafSize.k4
            if i < t.count, t[i].hasPrefix("leaf=") {
                let word = t[i].dropFirst(5).string
                guard let l = LeafSize.allCases.first(where: { $0.keyword == word }) else {
                    throw StatementProblem("leaf= must be 4K, 2M or 1G, not '\(word)'")
                }
                leaf = l
                i += 1
            }
            if i < t.count { throw StatementProblem("unknown pte flag '\(t[i].string)' (ro, then leaf=SIZE)") }
            return .pte(vaddr: vaddr, count: count, pfn: pfn, readOnly: readOnly, leaf: leaf)
        case "touch":
            try t.arity(4)
            guard t[3] == "r" || t[3] == "w" else { throw StatementProblem("touch access must be r or w, not '\(t[3].string)'") }
            return .touch(vaddr: try number(t[1]), count: try number(t[2]), write: t[3] == "w")
        case "map":
            try t.arity(5)
            return .map(iova: try number(t[1]), vaddr: try number(t[2]), size: try number(t[3]), access: try access(t[4], allowNone: true))
        case "unmap":
            try t.arity(3)
            return .unmap(iova: try number(t[1]), size: try number(t[2]))
        case "unmap_all":
            if t.count == 1 { return .unmapAll(iova: 0, size: 0) }
            try t.arity(3)
            return .unmapAll(iova: try number(t[1]), size: try number(t[2]))
        case "pin":
            try t.arity(4)
            return .pin(iova: try number(t[1]), count: try number(t[2]), access: try access(t[3], allowNone: false))
        case "unpin":
            try t.arity(3)
            return .unpin(iova: try number(t[1]), count: try number(t[2]))
        case "mark":
            guard t.count >= 2 else { throw StatementProblem("mark needs a TEXT") }
            return .mark(TraceText(try t.text(from: 1)))
        case "vptr-text":
            throw StatementProblem("a second 'vptr-text' header")
        default:
            throw StatementProblem("unknown keyword '\(keyword)'")
        }
    }

    private func parseVMA(_ t: Tokens) throws(StatementProblem) -> VMASpec {
        try t.arity(4, Int.max)
        var v = VMASpec(start: try number(t[1]), end: try number(t[2]))
        let perms = t[3].bytes
        guard perms.count == 3, perms[0] == UInt8(ascii: "r") || perms[0] == UInt8(ascii: "-"),
            perms[1] == UInt8(ascii: "w") || perms[1] == UInt8(ascii: "-"),
            perms[2] == UInt8(ascii: "x") || perms[2] == UInt8(ascii: "-")
        else {
            throw StatementProblem("PERMS must be three characters r/-, w/-, x/-, not '\(t[3].string)'")
        }
        v.read = perms[0] == UInt8(ascii: "r")
        v.write = perms[1] == UInt8(ascii: "w")
        v.exec = perms[2] == UInt8(ascii: "x")
        var seen = Set<String>()
        var i = 4
        while i < t.count {
            let word = t[i].string
            let key = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
            guard seen.insert(key).inserted else { throw StatementProblem("VMA flag '\(key)' given twice") }
            if let flag = VMAFlags.keywords.first(where: { $0.0 == word })?.1 {
                v.flags.insert(flag)
            } else if word.hasPrefix("hugetlb=") {
                v.hugetlbSize = try number(t[i].dropFirst(8))
                guard v.hugetlbSize != 0 else { throw StatementProblem("hugetlb=0 is not a huge page size") }
            } else if word.hasPrefix("pgoff=") {
                v.pgoff = try number(t[i].dropFirst(6))
            } else if word.hasPrefix("name=") {
                // name= runs to the end of the line.
                v.name = TraceText(try t.text(from: i, dropping: 5))
                guard !v.name.isEmpty else { throw StatementProblem("name= is empty") }
                break
            } else {
                throw StatementProblem("unknown VMA flag '\(word)'")
            }
            i += 1
        }
        return v
    }

    private func yesNo(_ t: Token) throws(StatementProblem) -> Bool {
        switch t.string {
        case "yes": return true
        case "no": return false
        default: throw StatementProblem("expected yes or no, not '\(t.string)'")
        }
    }

    private func access(_ t: Token, allowNone: Bool) throws(StatementProblem) -> Access {
        let s = t.string
        switch s {
        case "r": return .read
        case "w": return .write
        case "rw": return [.read, .write]
        case "-" where allowNone: return []
        default: throw StatementProblem("access must be \(allowNone ? "r, w, rw or -" : "r, w or rw"), not '\(s)'")
        }
    }
}

/// A number as the text form spells it (decimal or `0x` hex, optional `K`/`M`/`G`/`T`), or nil.
public func parseTraceNumber(_ token: String) -> UInt64? {
    var token = token
    return token.withUTF8 { try? number(Token(bytes: $0)) }
}

/// Parses a number of the text form: decimal or `0x` hex, with an optional binary suffix
/// `K`, `M`, `G` or `T`. Throws for anything else and for values past 64 bits.
func number(_ token: Token) throws(StatementProblem) -> UInt64 {
    var digits = token.bytes[...]
    var shift: UInt64 = 0
    switch digits.last {
    case UInt8(ascii: "K"): shift = 10
    case UInt8(ascii: "M"): shift = 20
    case UInt8(ascii: "G"): shift = 30
    case UInt8(ascii: "T"): shift = 40
    default: break
    }
    if shift != 0 { digits = digits.dropLast() }
    var radix: UInt64 = 10
    if digits.count >= 2, digits[digits.startIndex] == UInt8(ascii: "0"),
        digits[digits.startIndex + 1] | 0x20 == UInt8(ascii: "x")
    {
        radix = 16
        digits = digits.dropFirst(2)
    }
    guard !digits.isEmpty else { throw StatementProblem("bad number '\(token.string)'") }
    var value: UInt64 = 0
    for ch in digits {
        let d: UInt64
        switch ch {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(ch - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: d = UInt64(ch - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: d = UInt64(ch - UInt8(ascii: "A") + 10)
        default: throw StatementProblem("bad number '\(token.string)'")
        }
        let (m, o1) = value.multipliedReportingOverflow(by: radix)
        let (a, o2) = m.addingReportingOverflow(d)
        guard !o1, !o2 else { throw StatementProblem("number '\(token.string)' is past 64 bits") }
        value = a
    }
    guard shift == 0 || value <= UInt64.max >> shift else {
        throw StatementProblem("number '\(token.string)' is past 64 bits")
    }
    return value << shift
}

/// One field of a line: bytes borrowed from the line being parsed.
struct Token {
    let bytes: UnsafeBufferPointer<UInt8>

    var string: String { String(decoding: bytes, as: UTF8.self) }

    func dropFirst(_ n: Int) -> Token { Token(bytes: UnsafeBufferPointer(rebasing: bytes.dropFirst(n))) }

    func hasPrefix(_ prefix: StaticString) -> Bool {
        let n = prefix.utf8CodeUnitCount
        guard n <= bytes.count else { return false }
        for i in 0..<n where bytes[i] != prefix.utf8Start[i] { return false }
        return true
    }

    static func == (token: Token, word: StaticString) -> Bool {
        token.bytes.count == word.utf8CodeUnitCount && token.hasPrefix(word)
    }
}

/// The blank-separated fields of a line (blanks are spaces and tabs), with their positions for
/// to-end-of-line text.
struct Tokens {
    private let line: UnsafeBufferPointer<UInt8>
    private var ranges: [Range<Int>] = []

    init(_ line: UnsafeBufferPointer<UInt8>) {
        self.line = line
        var i = 0
        let n = line.count
        while i < n {
            while i < n, isBlank(line[i]) { i += 1 }
            guard i < n else { break }
            let start = i
            while i < n, !isBlank(line[i]) { i += 1 }
            ranges.append(start..<i)
        }
    }

    var isEmpty: Bool { ranges.isEmpty }
    var count: Int { ranges.count }
    subscript(i: Int) -> Token { Token(bytes: UnsafeBufferPointer(rebasing: line[ranges[i]])) }
    var joined: String { (0..<count).map { self[$0].string }.joined(separator: " ") }

    /// The text from field `i` to the end of the line, less `dropping` leading bytes, trailing
    /// blanks trimmed, escapes (`\\`, `\xHH`) decoded: see `escapeTraceText`.
    func text(from i: Int, dropping: Int = 0) throws(StatementProblem) -> String {
        var end = line.count
        while end > 0, isBlank(line[end - 1]) { end -= 1 }
        return try unescapeTraceText(UnsafeBufferPointer(rebasing: line[(ranges[i].lowerBound + dropping)..<end]))
    }

    /// Throws unless the line has between `min` and `max` fields (the keyword included).
    func arity(_ min: Int, _ max: Int? = nil) throws(StatementProblem) {
        let max = max ?? min
        if count < min { throw StatementProblem("missing field: '\(self[0].string)' takes \(min) fields, got \(count)") }
        if count > max { throw StatementProblem("extra field: '\(self[0].string)' takes \(max) fields, got \(count)") }
    }
}

@inline(__always) private func isBlank(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }

/// Writes a mark's text or a VMA name so that the text form carries it exactly: a backslash
/// becomes `\\`; a control character, DEL, `#`, and a blank at either end become `\xHH`.
/// Everything else (other Unicode included) is written as it is.
public func escapeTraceText(_ text: String) -> String {
    let bytes = Array(text.utf8)
    var needs = false
    for (i, b) in bytes.enumerated() where mustEscape(b, first: i == 0, last: i == bytes.count - 1) || b == UInt8(ascii: "\\") {
        needs = true
        break
    }
    guard needs else { return text }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + 8)
    let digits = Array("0123456789abcdef".utf8)
    for (i, b) in bytes.enumerated() {
        if b == UInt8(ascii: "\\") {
            out += [b, b]
        } else if mustEscape(b, first: i == 0, last: i == bytes.count - 1) {
            out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), digits[Int(b >> 4)], digits[Int(b & 15)]]
        } else {
            out.append(b)
        }
    }
    return String(decoding: out, as: UTF8.self)
}

private func mustEscape(_ b: UInt8, first: Bool, last: Bool) -> Bool {
    b < 0x20 || b == 0x7f || b == UInt8(ascii: "#") || ((first || last) && b == UInt8(ascii: " "))
}

/// Decodes what `escapeTraceText` wrote. Any other backslash is an error, as is a `\xHH`
/// that leaves the text invalid UTF-8.
func unescapeTraceText(_ raw: UnsafeBufferPointer<UInt8>) throws(StatementProblem) -> String {
    guard raw.contains(UInt8(ascii: "\\")) else { return String(decoding: raw, as: UTF8.self) }
    var out: [UInt8] = []
    out.reserveCapacity(raw.count)
    var i = 0
    while i < raw.count {
        let b = raw[i]
        guard b == UInt8(ascii: "\\") else {
            out.append(b)
            i += 1
            continue
        }
        if i + 1 < raw.count, raw[i + 1] == UInt8(ascii: "\\") {
            out.append(b)
            i += 2
        } else if i + 3 < raw.count, raw[i + 1] == UInt8(ascii: "x"), let hi = hexDigit(raw[i + 2]), let lo = hexDigit(raw[i + 3]) {
            out.append(hi << 4 | lo)
            i += 4
        } else {
            throw StatementProblem("bad escape at column \(i + 1): write \\\\ for a backslash, \\xHH for a byte")
        }
    }
    guard let text = String(validating: out, as: UTF8.self) else {
        throw StatementProblem("escaped text is not valid UTF-8")
    }
    return text
}

private func hexDigit(_ b: UInt8) -> UInt8? {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
    default: nil
    }
}

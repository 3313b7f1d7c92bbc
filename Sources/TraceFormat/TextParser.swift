/// Parses the text form of SPEC.md §5 line by line. Comments and blank lines yield nothing;
/// every other line after `vptr-text 1` yields one statement (an event).
public struct TextParser {
    public let file: String
    /// The line last given to `parse(line:)`, 1-based.
    public private(set) var lineNumber = 0
    private var sawHeader = false
    private var validator = StatementValidator()

    public init(file: String) { self.file = file }

    /// Whether the header line has been seen; a trace without one is empty or not a trace.
    public var isStarted: Bool { sawHeader }

    /// Parses the next line (without its newline).
    public mutating func parse(line raw: Substring) throws(TraceError) -> Statement? {
        lineNumber += 1
        var text = raw
        if let hash = text.firstIndex(of: "#") { text = text[..<hash] }
        if text.last == "\r" { text = text.dropLast() }
        let tokens = Tokens(text)
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
            throw TraceError(file: file, .line(lineNumber), error.message)
        }
    }

    /// Called after the last line: a file with no header is not a trace.
    public func finish() throws(TraceError) {
        if !sawHeader {
            throw TraceError(file: file, .file, "no 'vptr-text 1' header: empty or not a text trace")
        }
    }

    private func parseHeader(_ t: Tokens) throws(StatementProblem) {
        guard t.count == 2, t[0] == "vptr-text" else {
            throw StatementProblem("first line must be 'vptr-text 1', not '\(t.joined)'")
        }
        guard t[1] == "1" else { throw StatementProblem("unsupported text trace version '\(t[1])' (this reader knows 1)") }
    }

    private func parseStatement(_ t: Tokens) throws(StatementProblem) -> Statement {
        let keyword = t[0]
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
        case "disable_hugepages":
            try t.arity(2)
            return .disableHugepages(try yesNo(t[1]))
        case "thp":
            try t.arity(2)
            guard let setting = THPSetting.allCases.first(where: { $0.keyword == t[1] }) else {
                throw StatementProblem("thp must be always, madvise or never, not '\(t[1])'")
            }
            return .thp(setting)
        case "dma_entry_limit":
            try t.arity(2)
            return .dmaEntryLimit(try number(t[1]))
        case "pfns":
            try t.arity(4)
            guard let kind = PfnKind.allCases.first(where: { $0.keyword == t[1] }) else {
                throw StatementProblem("pfns class must be ram, reserved or mmio, not '\(t[1])'")
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
                let word = String(t[i].dropFirst(5))
                guard let l = LeafSize.allCases.first(where: { $0.keyword == word }) else {
                    throw StatementProblem("leaf= must be 4K, 2M or 1G, not '\(word)'")
                }
                leaf = l
                i += 1
            }
            if i < t.count { throw StatementProblem("unknown pte flag '\(t[i])' (ro, then leaf=SIZE)") }
            return .pte(vaddr: vaddr, count: count, pfn: pfn, readOnly: readOnly, leaf: leaf)
        case "touch":
            try t.arity(4)
            guard t[3] == "r" || t[3] == "w" else { throw StatementProblem("touch access must be r or w, not '\(t[3])'") }
            return .touch(vaddr: try number(t[1]), count: try number(t[2]), write: t[3] == "w")
        case "map":
            try t.arity(5)
            return .map(iova: try number(t[1]), vaddr: try number(t[2]), size: try number(t[3]), access: try access(t[4], allowNone: true))
        case "unmap":
            try t.arity(3)
            return .unmap(iova: try number(t[1]), size: try number(t[2]))
        case "pin":
            try t.arity(4)
            return .pin(iova: try number(t[1]), count: try number(t[2]), access: try access(t[3], allowNone: false))
        case "unpin":
            try t.arity(3)
            return .unpin(iova: try number(t[1]), count: try number(t[2]))
        case "mark":
            guard t.count >= 2 else { throw StatementProblem("mark needs a TEXT") }
            return .mark(t.rest(from: 1))
        case "vptr-text":
            throw StatementProblem("a second 'vptr-text' header")
        default:
            throw StatementProblem("unknown keyword '\(keyword)'")
        }
    }

    private func parseVMA(_ t: Tokens) throws(StatementProblem) -> VMASpec {
        try t.arity(4, Int.max)
        var v = VMASpec(start: try number(t[1]), end: try number(t[2]))
        let perms = Array(t[3])
        guard perms.count == 3, "r-".contains(perms[0]), "w-".contains(perms[1]), "x-".contains(perms[2]) else {
            throw StatementProblem("PERMS must be three characters r/-, w/-, x/-, not '\(t[3])'")
        }
        v.read = perms[0] == "r"
        v.write = perms[1] == "w"
        v.exec = perms[2] == "x"
        var seen = Set<String>()
        var i = 4
        while i < t.count {
            let word = t[i]
            let key = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
            guard seen.insert(key).inserted else { throw StatementProblem("VMA flag '\(key)' given twice") }
            if let flag = VMAFlagSet.keywords.first(where: { $0.0 == word })?.1 {
                v.flags.insert(flag)
            } else if word.hasPrefix("hugetlb=") {
                v.hugetlb = try number(String(word.dropFirst(8)))
                guard v.hugetlb != 0 else { throw StatementProblem("hugetlb=0 is not a huge page size") }
            } else if word.hasPrefix("pgoff=") {
                v.pgoff = try number(String(word.dropFirst(6)))
            } else if word.hasPrefix("name=") {
                // name= runs to the end of the line.
                v.name = String(t.rest(from: i).dropFirst(5))
                guard !v.name.isEmpty else { throw StatementProblem("name= is empty") }
                break
            } else {
                throw StatementProblem("unknown VMA flag '\(word)'")
            }
            i += 1
        }
        return v
    }

    private func yesNo(_ s: String) throws(StatementProblem) -> Bool {
        switch s {
        case "yes": return true
        case "no": return false
        default: throw StatementProblem("expected yes or no, not '\(s)'")
        }
    }

    private func access(_ s: String, allowNone: Bool) throws(StatementProblem) -> Access {
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
    try? number(token)
}

/// Parses a number of the text form: decimal or `0x` hex, with an optional binary suffix
/// `K`, `M`, `G` or `T`. Throws for anything else and for values past 64 bits.
func number(_ token: String) throws(StatementProblem) -> UInt64 {
    var digits = Substring(token)
    var shift: UInt64 = 0
    switch digits.last {
    case "K": shift = 10
    case "M": shift = 20
    case "G": shift = 30
    case "T": shift = 40
    default: break
    }
    if shift != 0 { digits = digits.dropLast() }
    var radix: UInt64 = 10
    if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
        radix = 16
        digits = digits.dropFirst(2)
    }
    guard !digits.isEmpty else { throw StatementProblem("bad number '\(token)'") }
    var value: UInt64 = 0
    for ch in digits.utf8 {
        let d: UInt64
        switch ch {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(ch - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: d = UInt64(ch - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: d = UInt64(ch - UInt8(ascii: "A") + 10)
        default: throw StatementProblem("bad number '\(token)'")
        }
        let (m, o1) = value.multipliedReportingOverflow(by: radix)
        let (a, o2) = m.addingReportingOverflow(d)
        guard !o1, !o2 else { throw StatementProblem("number '\(token)' is past 64 bits") }
        value = a
    }
    guard shift == 0 || value <= UInt64.max >> shift else {
        throw StatementProblem("number '\(token)' is past 64 bits")
    }
    return value << shift
}

/// The whitespace-separated fields of a line, with their positions for to-end-of-line text.
struct Tokens {
    private let line: Substring
    private var ranges: [Range<Substring.Index>] = []

    init(_ line: Substring) {
        self.line = line
        var i = line.startIndex
        while i < line.endIndex {
            while i < line.endIndex, line[i] == " " || line[i] == "\t" { i = line.index(after: i) }
            guard i < line.endIndex else { break }
            let start = i
            while i < line.endIndex, line[i] != " " && line[i] != "\t" { i = line.index(after: i) }
            ranges.append(start..<i)
        }
    }

    var isEmpty: Bool { ranges.isEmpty }
    var count: Int { ranges.count }
    subscript(i: Int) -> String { String(line[ranges[i]]) }
    var joined: String { ranges.map { String(line[$0]) }.joined(separator: " ") }

    /// The line from field `i` to its end, trailing blanks trimmed.
    func rest(from i: Int) -> String {
        var s = line[ranges[i].lowerBound...]
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return String(s)
    }

    /// Throws unless the line has between `min` and `max` fields (the keyword included).
    func arity(_ min: Int, _ max: Int? = nil) throws(StatementProblem) {
        let max = max ?? min
        if count < min { throw StatementProblem("missing field: '\(self[0])' takes \(min) fields, got \(count)") }
        if count > max { throw StatementProblem("extra field: '\(self[0])' takes \(max) fields, got \(count)") }
    }
}

import Foundation

/// Cuts the functions an era's entry points need out of a whole `vfio_iommu_type1.c`: the
/// named ones and, transitively, every function of the file they call that the era's header
/// does not provide. A small lexer, not a C parser: it knows comments, string and character
/// literals, preprocessor lines (a function inside `#if`/`#ifdef` keeps its conditional
/// around it) and nested braces. Each function is emitted after a `#line` naming its place in
/// the original, so a compile error points into the user's file.
public struct CExtractor {
    /// A top-level function definition of the file.
    struct Function {
        var name: String
        /// Byte range of the definition, from its return type to its closing brace.
        var range: Range<Int>
        /// 1-based line of its first byte.
        var line: Int
        /// Identifiers its text uses.
        var uses: Set<String>
        /// The conditional directives around it, outermost first: for each level, its `#if`
        /// line and every `#elif`/`#else` line before the branch it sits in.
        var conditions: [[String]]
    }

    let source: [UInt8]
    let path: String
    var functions: [Function] = []

    /// Lexes `text` (the file at `path`) and finds its top-level function definitions.
    public init(_ text: String, path: String) {
        source = Array(text.utf8)
        self.path = path
        scan()
    }

    /// Whether the file is a whole `vfio_iommu_type1.c` rather than a block cut out of one.
    public var isWholeFile: Bool {
        functions.contains { $0.name == "vfio_iommu_type1_ioctl" || $0.name == "vfio_iommu_type1_open" }
    }

    /// The names of the file's function definitions, in file order.
    public var functionNames: [String] { functions.map(\.name) }

    /// The translation unit holding `needed` and the helpers they call, minus what `provided`
    /// (the era's header and entry points) defines; in file order. Throws naming the first
    /// needed function the file does not define.
    public func extract(needed: [String], provided: Set<String>) throws(CEngineError) -> String {
        try cut(needed: needed, provided: provided).text
    }

    /// As `extract`, with the names of the functions the cut holds. `after` is text to emit
    /// after a function's (last) definition: the macros that count its later calls.
    public func cut(needed: [String], provided: Set<String>, after: [String: String] = [:]) throws(CEngineError) -> (
        text: String, functions: [String]
    ) {
        // Every definition of a name: variants under #if/#else are kept with their conditions.
        var byName: [String: [Int]] = [:]
        for (i, f) in functions.enumerated() { byName[f.name, default: []].append(i) }
        var keep = Set<Int>()
        var queue: [String] = []
        for name in needed {
            guard let all = byName[name] else {
                throw CEngineError(message: "\(path): no definition of \(name)(), which the pinning code needs")
            }
            keep.formUnion(all)
            queue.append(name)
        }
        var seen = Set(needed)
        while let name = queue.popLast() {
            for i in byName[name] ?? [] {
                for used in functions[i].uses.sorted() where !provided.contains(used) && byName[used] != nil {
                    if seen.insert(used).inserted {
                        keep.formUnion(byName[used] ?? [])
                        queue.append(used)
                    }
                }
            }
        }
        var out = "/* cut by pinreplay from \(path): \(keep.count) functions */\n"
        var names: [String] = []
        for i in keep.sorted() {
            let f = functions[i]
            names.append(f.name)
            for level in f.conditions { out += level.joined(separator: "\n") + "\n" }
            out += "#line \(f.line) \"\(path)\"\n"
            out += String(decoding: source[f.range], as: UTF8.self) + "\n"
            for _ in f.conditions { out += "#endif\n" }
            if let text = after[f.name], !keep.contains(where: { $0 > i && functions[$0].name == f.name }) { out += text + "\n" }
        }
        return (out, names)
    }

    /// The identifiers a C text defines or uses at its top level, for the header's names.
    public static func identifiers(_ text: String) -> Set<String> {
        let e = CExtractor(text, path: "")
        return e.identifierSet(e.blanked(), in: 0..<e.source.count)
    }

    // MARK: - Lexing

    private static func isIdent(_ c: UInt8) -> Bool {
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95
    }

    /// The source with comments, literal contents and preprocessor lines turned into spaces
    /// (newlines kept), so braces and parentheses can be counted on it.
    func blanked() -> [UInt8] {
        var b = source
        var i = 0
        var lineStart = true
        let n = b.count
        func blank(_ r: Range<Int>) { for k in r where b[k] != 10 { b[k] = 32 } }
        while i < n {
            let c = b[i]
            if c == 10 {
                lineStart = true
                i += 1
                continue
            }
            if lineStart && c == 35 {  // '#' starts a preprocessor line, continued by '\'
                var j = i
                while j < n && !(b[j] == 10 && (j == 0 || source[j - 1] != 92)) { j += 1 }
                blank(i..<j)
                i = j
                continue
            }
            if c != 32 && c != 9 { lineStart = false }
            if c == 47 && i + 1 < n && b[i + 1] == 42 {  // /* ... */
                var j = i + 2
                while j + 1 < n && !(b[j] == 42 && b[j + 1] == 47) { j += 1 }
                j = min(n, j + 2)
                blank(i..<j)
                i = j
            } else if c == 47 && i + 1 < n && b[i + 1] == 47 {  // // ...
                var j = i
                while j < n && b[j] != 10 { j += 1 }
                blank(i..<j)
                i = j
            } else if c == 34 || c == 39 {  // "..." or '...'
                var j = i + 1
                while j < n && b[j] != c && b[j] != 10 {
                    if b[j] == 92 { j += 1 }
                    j += 1
                }
                blank((i + 1)..<min(n, j))
                i = min(n, j + 1)
            } else {
                i += 1
            }
        }
        return b
    }

    func identifierSet(_ b: [UInt8], in r: Range<Int>) -> Set<String> {
        var out = Set<String>()
        var i = r.lowerBound
        while i < r.upperBound {
            if Self.isIdent(b[i]) && !(b[i] >= 48 && b[i] <= 57) {
                var j = i
                while j < r.upperBound && Self.isIdent(b[j]) { j += 1 }
                out.insert(String(decoding: b[i..<j], as: UTF8.self))
                i = j
            } else {
                i += 1
            }
        }
        return out
    }

    /// The conditional directives in force at each top-level position: a stack, per `#if`
    /// level, of its directive lines up to the current branch.
    private mutating func scan() {
        let b = blanked()
        let n = b.count
        // Directive lines at the top level (depth 0), with their offsets.
        var directives: [(at: Int, text: String)] = []
        do {
            var i = 0
            var depth = 0
            var lineStart = true
            while i < n {
                let c = b[i]
                if c == 123 { depth += 1 }
                if c == 125 { depth -= 1 }
                if lineStart && source[i] == 35 && depth == 0 {
                    var j = i
                    while j < n && !(source[j] == 10 && (j == 0 || source[j - 1] != 92)) { j += 1 }
                    directives.append((i, String(decoding: source[i..<j], as: UTF8.self)))
                }
                if c == 10 { lineStart = true } else if c != 32 && c != 9 { lineStart = false }
                i += 1
            }
        }
        func conditions(at pos: Int) -> [[String]] {
            var stack: [[String]] = []
            for d in directives where d.at < pos {
                let word = d.text.dropFirst().drop { $0 == " " || $0 == "\t" }.prefix { $0.isLetter }
                switch word {
                case "if", "ifdef", "ifndef": stack.append([d.text])
                case "elif", "else": if !stack.isEmpty { stack[stack.count - 1].append(d.text) }
                case "endif": if !stack.isEmpty { stack.removeLast() }
                default: break
                }
            }
            return stack
        }
        var headStart = 0
        var i = 0
        while i < n {
            let c = b[i]
            if c == 123 {
                // A top-level brace: a function body if the head ends with a parameter list.
                var close = i
                var d = 0
                while close < n {
                    if b[close] == 123 { d += 1 }
                    if b[close] == 125 {
                        d -= 1
                        if d == 0 { break }
                    }
                    close += 1
                }
                if let f = function(b, head: headStart..<i, end: min(n, close + 1), conditions: conditions) {
                    functions.append(f)
                }
                i = min(n, close + 1)
                headStart = i
                continue
            }
            if c == 59 { headStart = i + 1 }
            i += 1
        }
    }

    /// The function whose body starts at `head.upperBound`, if the head is a signature.
    private func function(
        _ b: [UInt8], head: Range<Int>, end: Int, conditions: (Int) -> [[String]]
    ) -> Function? {
        var k = head.upperBound - 1
        while k >= head.lowerBound && (b[k] == 32 || b[k] == 10 || b[k] == 9 || b[k] == 13) { k -= 1 }
        guard k >= head.lowerBound, b[k] == 41 else { return nil }  // ')'
        var d = 0
        var open = k
        while open >= head.lowerBound {
            if b[open] == 41 { d += 1 }
            if b[open] == 40 {
                d -= 1
                if d == 0 { break }
            }
            open -= 1
        }
        guard open > head.lowerBound else { return nil }
        var e = open - 1
        while e >= head.lowerBound && (b[e] == 32 || b[e] == 9 || b[e] == 10) { e -= 1 }
        var s = e
        while s >= head.lowerBound && Self.isIdent(b[s]) { s -= 1 }
        guard e > s else { return nil }
        let name = String(decoding: b[(s + 1)...e], as: UTF8.self)
        var start = head.lowerBound
        while start < head.upperBound && (b[start] == 32 || b[start] == 10 || b[start] == 9 || b[start] == 13) { start += 1 }
        let line = source[..<start].reduce(1) { $0 + ($1 == 10 ? 1 : 0) }
        return Function(
            name: name, range: start..<end, line: line, uses: identifierSet(b, in: start..<end), conditions: conditions(start))
    }
}

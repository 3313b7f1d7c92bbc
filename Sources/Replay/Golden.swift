import TraceFormat
import VFIOEngines
import VFIOModel

/// Golden traces: each trace under `traces/` beside its expected results, the `--format json`
/// report of `replay --engines all` (`NAME.expected.json`) and its `--format jsonl` outcomes
/// (`NAME.expected.jsonl`), which also pin down what every engine agrees on.
public enum Golden {
    /// The expected results of a golden trace and their file suffixes.
    public struct Results: Equatable, Sendable {
        public var json: String
        public var jsonl: String
        public static let suffixes = [".expected.json", ".expected.jsonl"]
        public var files: [String] { [json, jsonl] }
    }

    /// `traces/NAME` for `traces/NAME.txt` or `traces/NAME.vptr`: add a suffix of `Results`.
    public static func expectedBase(for trace: String) -> String {
        var base = trace
        for ext in [".txt", ".vptr"] where base.hasSuffix(ext) { base.removeLast(ext.count) }
        return base
    }

    /// The results a golden trace's files hold. The trace is named `traces/<file name>`
    /// whatever the path it was read from, so they do not depend on where the repository
    /// lies. `engines` is for tests that mutate an engine on purpose.
    public static func render(trace path: String, engines: [any PinEngine] = Engines.all) throws(TraceError) -> Results {
        var observer = JSONLObserver()
        var report = try Replayer(engines: engines).replay(path: path, observer: &observer)
        report.trace = "traces/" + (path.split(separator: "/").last.map(String.init) ?? path)
        return Results(json: JSONReport.render([report]), jsonl: observer.text)
    }

    /// The first line where two reports differ, with the event it concerns, or nil if equal.
    public static func difference(expected: String, got: String) -> String? {
        guard expected != got else { return nil }
        let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let g = got.split(separator: "\n", omittingEmptySubsequences: false)
        var i = 0
        while i < e.count && i < g.count && e[i] == g[i] { i += 1 }
        func line(_ lines: [Substring]) -> String { i < lines.count ? String(lines[i]) : "(nothing)" }
        let context = [line(e), line(g)].compactMap(eventOf).first.map { "event \($0)" } ?? section(e, upTo: i)
        // jsonl lines name their event; a report's lines name theirs or their section.
        return "line \(i + 1) (\(context)):\n  expected: \(line(e))\n  got:      \(line(g))"
    }

    /// The `"event":N` a report line is about.
    static func eventOf(_ line: String) -> String? {
        let key = Array("\"event\":".utf8)
        let bytes = Array(line.utf8)
        guard bytes.count >= key.count else { return nil }
        for i in 0...(bytes.count - key.count) where Array(bytes[i..<i + key.count]) == key {
            let digits = bytes[(i + key.count)...].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            return String(decoding: digits, as: UTF8.self)
        }
        return nil
    }

    /// Which part of the report line `i` lies in.
    static func section(_ lines: [Substring], upTo i: Int) -> String {
        for k in stride(from: min(i, lines.count - 1), through: 0, by: -1) {
            for name in ["violations", "divergences", "summary"] where lines[k].hasPrefix("\"\(name)\"") { return name }
        }
        return "header"
    }

    /// Counts of divergences and violations in a report, for bless to say what changed.
    public static func counts(_ report: String) -> (divergences: Int, violations: Int) {
        var d = 0
        var v = 0
        var inViolations = false
        for line in report.split(separator: "\n") {
            if line.hasPrefix("\"violations\"") { inViolations = true }
            if line.hasPrefix("\"divergences\"") { inViolations = false }
            if line.hasPrefix("{\"event\":") { d += 1 }
            if inViolations && line.hasPrefix("{\"engine\":") { v += 1 }
        }
        return (d, v)
    }
}

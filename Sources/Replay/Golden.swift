import Foundation
import TraceFormat
import VFIOEngines
import VFIOModel

/// Golden traces: each trace under `traces/` with its expected results in
/// `traces/expected/NAME/`, one file per engine (`ENGINE.jsonl`: the engine's jsonl lines,
/// then its violations, then its counters) and `report.json`, the `--format json` report of
/// the default pair (v4.16 against v4.17-rc1, the seed's question). Adding an engine adds one
/// file per trace and changes none.
public enum Golden {
    /// The name of the default pair's report in a trace's expected folder.
    public static let reportFile = "report.json"

    /// The expected results of a golden trace: file name in its folder, text.
    public struct Results: Equatable, Sendable {
        /// The expected files, by name, in name order.
        public var files: [(name: String, text: String)]

        public static func == (a: Results, b: Results) -> Bool {
            a.files.map(\.name) == b.files.map(\.name) && a.files.map(\.text) == b.files.map(\.text)
        }

        /// The text of one file, if present.
        public subscript(name: String) -> String? { files.first { $0.name == name }?.text }
    }

    /// `traces/expected/NAME` for `traces/NAME.txt` or `traces/NAME.vptr`.
    public static func expectedDir(for trace: String) -> String {
        let url = URL(fileURLWithPath: trace)
        let name = url.deletingPathExtension().lastPathComponent
        return url.deletingLastPathComponent().appendingPathComponent("expected").appendingPathComponent(name).path
    }

    /// The engine file name: `v4.16.jsonl`.
    public static func fileName(engine: String) -> String { engine + ".jsonl" }

    /// The results a golden trace's files hold. The trace is named `traces/<file name>`
    /// whatever the path it was read from, so they do not depend on where the repository
    /// lies. `engines` is for tests that mutate an engine on purpose; `pair` makes the report.
    public static func render(
        trace path: String, engines: [any Engine] = Engines.all, pair: [any Engine] = defaultPair
    ) throws(TraceError) -> Results {
        let name = "traces/" + (path.split(separator: "/").last.map(String.init) ?? path)
        var perEngine = PerEngineObserver(count: engines.count)
        var replayer = Replayer(engines: engines)
        replayer.examples = .max
        let all = try replayer.replay(path: path, observer: &perEngine)
        var files: [(String, String)] = []
        for (i, s) in all.summaries.enumerated() {
            var text = perEngine.texts[i]
            for v in all.violations where v.engine == s.engine { text += JSONReport.violationLine(v) + "\n" }
            text += JSONReport.summaryLine(s) + "\n"
            files.append((fileName(engine: s.engine), text))
        }
        var none = NoObserver()
        var pairReplayer = Replayer(engines: pair)
        pairReplayer.examples = .max
        var report = try pairReplayer.replay(path: path, observer: &none)
        report.trace = name
        files.append((reportFile, JSONReport.render([report])))
        return Results(files: files.sorted { $0.0 < $1.0 })
    }

    /// v4.16 against v4.17-rc1.
    public static var defaultPair: [any Engine] { Engines.defaultNames.compactMap(Engines.named) }

    /// The expected results stored for a trace (every file in its folder), or nil if none.
    public static func stored(trace: String) -> Results? {
        let dir = expectedDir(for: trace)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir), !names.isEmpty else { return nil }
        var files: [(String, String)] = []
        for n in names.sorted() {
            guard let text = try? String(contentsOfFile: dir + "/" + n, encoding: .utf8) else { return nil }
            files.append((n, text))
        }
        return Results(files: files)
    }

    /// Every difference between stored and fresh results: a file missing, extra or changed
    /// (with its first differing line).
    public static func differences(expected: Results?, got: Results) -> [String] {
        guard let expected else { return ["no expected results"] }
        var out: [String] = []
        let names = Set(expected.files.map(\.name)).union(got.files.map(\.name)).sorted()
        for n in names {
            switch (expected[n], got[n]) {
            case (nil, _): out.append("\(n): not stored")
            case (_, nil): out.append("\(n): stored but no longer produced")
            case let (e?, g?): if let d = difference(expected: e, got: g) { out.append("\(n) differs at \(d)") }
            }
        }
        return out
    }

    /// Every changed line of each file, for `bless --check`: `- line` only in the stored file,
    /// `+ line` only in the new one (as a multiset, in file order: an inserted line shows once,
    /// not as every line after it).
    public static func changedLines(expected: Results?, got: Results) -> [String] {
        var out: [String] = []
        let names = Set(expected?.files.map(\.name) ?? []).union(got.files.map(\.name)).sorted()
        for n in names {
            let e = (expected?[n] ?? "").split(separator: "\n").map(String.init)
            let g = (got[n] ?? "").split(separator: "\n").map(String.init)
            guard e != g else { continue }
            var inGot: [String: Int] = [:]
            for l in g { inGot[l, default: 0] += 1 }
            var inExpected: [String: Int] = [:]
            for l in e { inExpected[l, default: 0] += 1 }
            for l in e {
                if let c = inGot[l], c > 0 { inGot[l] = c - 1 } else { out.append("\(n): - \(l)") }
            }
            for l in g {
                if let c = inExpected[l], c > 0 { inExpected[l] = c - 1 } else { out.append("\(n): + \(l)") }
            }
        }
        return out
    }

    /// The first line where two files differ, with the event it concerns, or nil if equal.
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

    /// Divergences (of the default pair's report) and violations (of every engine), for bless
    /// to say what changed: read as JSON, the report's `counts` and each engine file's
    /// violation objects (the lines with a `kind`).
    public static func counts(_ results: Results) -> (divergences: Int, violations: Int) {
        func object(_ text: Substring) -> [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
        }
        var d = 0
        var v = 0
        for (name, text) in results.files {
            if name == reportFile {
                let traces = object(text[...])?["traces"] as? [[String: Any]] ?? []
                for t in traces {
                    let kinds = (t["counts"] as? [String: Any])?["divergences"] as? [String: Int] ?? [:]
                    d += kinds.values.reduce(0, +)
                }
            } else {
                v += text.split(separator: "\n").count { object($0)?["kind"] != nil }
            }
        }
        return (d, v)
    }
}

/// The jsonl lines of each engine apart.
struct PerEngineObserver: ReplayObserver {
    var texts: [String]
    init(count: Int) { texts = Array(repeating: "", count: count) }

    mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
        for (i, (name, o)) in zip(engines, outcomes).enumerated() {
            texts[i] += JSONText.requestLine(event: event, engine: name, o) + "\n"
        }
    }
}

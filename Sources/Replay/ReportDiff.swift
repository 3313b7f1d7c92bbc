import Foundation
import TraceFormat

/// `pinreplay diff A.json B.json`: two JSON reports (schema 2) compared trace by trace and
/// request by request, e.g. a golden report against a fresh one, or one kernel patch's against
/// the next. Each line names the trace and the event.
public enum ReportDiff {
    /// The differences, one line each; empty when the reports agree on every trace, count,
    /// divergence and violation.
    public static func compare(_ a: Data, _ b: Data, names: (String, String)) throws(TraceError) -> [String] {
        let ta = try traces(a, names.0)
        let tb = try traces(b, names.1)
        var out: [String] = []
        for (name, x) in ta {
            guard let y = tb.first(where: { $0.0 == name })?.1 else {
                out.append("\(name): only in \(names.0)")
                continue
            }
            out += compare(trace: name, x, y, names)
        }
        for (name, _) in tb where !ta.contains(where: { $0.0 == name }) { out.append("\(name): only in \(names.1)") }
        return out
    }

    private static func traces(_ data: Data, _ file: String) throws(TraceError) -> [(String, [String: Any])] {
        guard let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TraceError(file: file, .file, .syntax, "not a JSON report")
        }
        guard doc["schema"] as? Int == JSONReport.schema else {
            throw TraceError(
                file: file, .file, .syntax,
                "report schema \(doc["schema"].map { "\($0)" } ?? "missing"), this version reads \(JSONReport.schema)")
        }
        guard let list = doc["traces"] as? [[String: Any]] else { throw TraceError(file: file, .file, .syntax, "no traces list") }
        return list.map { (($0["trace"] as? String) ?? "?", $0) }
    }

    /// Findings of one trace keyed by what identifies them: the event and kind of a divergence
    /// (with its detail), the engine, event and kind of a violation.
    private static func findings(_ t: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for d in t["divergences"] as? [[String: Any]] ?? [] {
            let key = "event \(d["event"] as? Int ?? 0): \(d["kind"] as? String ?? "?") divergence"
            out[key] = d["detail"] as? String ?? ""
        }
        for v in t["violations"] as? [[String: Any]] ?? [] {
            let key = "event \(v["event"] as? Int ?? 0): \(v["engine"] as? String ?? "?") \(v["kind"] as? String ?? "?")"
            out[key, default: ""] += (out[key] == nil ? "" : " | ") + (v["detail"] as? String ?? "")
        }
        return out
    }

    private static func compare(trace: String, _ x: [String: Any], _ y: [String: Any], _ names: (String, String)) -> [String] {
        var out: [String] = []
        if (x["engines"] as? [String]) != (y["engines"] as? [String]) {
            out.append(
                "\(trace): engines \((x["engines"] as? [String])?.joined(separator: ",") ?? "?") → \((y["engines"] as? [String])?.joined(separator: ",") ?? "?")"
            )
        }
        let cx = (x["counts"] as? [String: Any]).map { NSDictionary(dictionary: $0) }
        let cy = (y["counts"] as? [String: Any]).map { NSDictionary(dictionary: $0) }
        if cx != cy { out.append("\(trace): counts differ") }
        let fx = findings(x)
        let fy = findings(y)
        let keys = Set(fx.keys).union(fy.keys).sorted { eventOf($0) == eventOf($1) ? $0 < $1 : eventOf($0) < eventOf($1) }
        for k in keys {
            switch (fx[k], fy[k]) {
            case let (l?, nil): out.append("\(trace): \(k): only in \(names.0): \(l)")
            case let (nil, r?): out.append("\(trace): \(k): only in \(names.1): \(r)")
            case let (l?, r?) where l != r: out.append("\(trace): \(k): \(l) → \(r)")
            default: break
            }
        }
        return out
    }

    private static func eventOf(_ key: String) -> Int {
        Int(key.dropFirst(6).prefix { $0.isNumber }) ?? 0
    }
}

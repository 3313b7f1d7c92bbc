import VFIOModel

/// Builds JSON text by hand so that key order, integers and spacing are exactly as specified.
struct JSONText {
    var out: String = ""

    mutating func raw(_ s: String) { out += s }

    mutating func string(_ s: String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    /// The fields of an outcome, as the jsonl form orders them (`JSONBytes.outcomeFields`).
    mutating func outcomeFields(_ o: RequestOutcome) {
        var bytes: [UInt8] = []
        JSONBytes.outcomeFields(o, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }
}

/// The one writer of an outcome's jsonl fields, as bytes: the jsonl stream writes gigabytes of
/// them, and the JSON report and the goldens take the same bytes as text.
enum JSONBytes {
    static func append(_ s: StaticString, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// A decimal integer, as JSON (and SPEC.md §4) spell it.
    static func append<T: BinaryInteger>(_ v: T, to buffer: inout [UInt8]) {
        if v < 0 { buffer.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // scratch for up to 20 digits
        var n = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[n] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: m % 10)
                m /= 10
                n += 1
            } while m != 0
            for i in stride(from: n - 1, through: 0, by: -1) { buffer.append(raw[i]) }
        }
    }

    /// `"op":"map","ret":R,"chunks":[[IOVA,PFN,NPAGE],...],"locked_vm":K` and the other ops.
    static func outcomeFields(_ o: RequestOutcome, to b: inout [UInt8]) {
        switch o {
        case let .map(ret, chunks, _):
            append("\"op\":\"map\",\"ret\":", to: &b)
            append(ret, to: &b)
            append(",\"chunks\":[", to: &b)
            for (i, c) in chunks.enumerated() {
                append(i == 0 ? "[" : ",[", to: &b)
                append(c.iova.rawValue, to: &b)
                append(",", to: &b)
                append(c.pfn.rawValue, to: &b)
                append(",", to: &b)
                append(c.npage, to: &b)
                append("]", to: &b)
            }
            append("],", to: &b)
        case let .unmap(ret, unmapped, _):
            append("\"op\":\"unmap\",\"ret\":", to: &b)
            append(ret, to: &b)
            append(",\"unmapped\":", to: &b)
            append(unmapped, to: &b)
            append(",", to: &b)
        case let .pin(ret, pfns, _):
            append("\"op\":\"pin\",\"ret\":", to: &b)
            append(ret, to: &b)
            append(",\"pfns\":[", to: &b)
            for (i, p) in pfns.enumerated() {
                if i > 0 { append(",", to: &b) }
                append(p.rawValue, to: &b)
            }
            append("],", to: &b)
        case let .unpin(ret, _):
            append("\"op\":\"unpin\",\"ret\":", to: &b)
            append(ret, to: &b)
            append(",", to: &b)
        case .notRun(let op):
            // The engine crashed before this request: nothing it did to report.
            append("\"op\":\"", to: &b)
            b += Array(op.utf8)
            append("\",\"not_run\":true", to: &b)
            return
        }
        append("\"locked_vm\":", to: &b)
        append(o.lockedVM, to: &b)
    }
}

extension JSONText {
    /// An engine's counters and figures as one object.
    mutating func summaryFields(_ s: EngineSummary) {
        raw("{")
        for (name, value) in s.counters.named { raw("\"\(name)\":\(value),") }
        raw("\"chunks_mapped\":\(s.chunksMapped),\"pages_pinned\":\(s.pagesPinned),")
        raw("\"locked_vm_peak\":\(s.lockedVMPeak),\"est_kernel_ns\":\(CostModel.estimate(s.counters)),")
        raw("\"locked_vm_final\":\(s.lockedVMFinal),\"locked_vm_counter\":\"\(s.lockedVMCounter)\",")
        raw("\"pinned_vm_peak\":\(s.pinnedVMPeak)}")
    }
}

extension JSONText {
    /// How many of each finding there were (the lists hold the first examples of each).
    mutating func countFields(_ r: TraceReport) {
        raw("{\"divergences\":{")
        raw(DivergenceKind.allCases.map { "\"\($0.rawValue)\":\(r.count($0))" }.joined(separator: ","))
        raw("},\"violations\":{")
        var first = true
        for e in r.engines {
            let kinds = ViolationKind.allCases
            if !first { raw(",") }
            first = false
            string(e)
            raw(":{" + kinds.map { "\"\($0)\":\(r.violationCounts[ViolationKey(engine: e, kind: $0)] ?? 0)" }.joined(separator: ",") + "}")
        }
        raw("},\"shared_failures\":\(r.sharedFailureCount)}")
    }
}

/// The jsonl stream of SPEC.md §4: one line per request per engine, as the replay runs.
public struct JSONLObserver: ReplayObserver {
    /// The jsonl written so far.
    public private(set) var text = ""

    /// An empty stream.
    public init() {}

    /// Appends the request's line.
    public mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {
        for (name, o) in zip(engines, outcomes) {
            text += JSONText.requestLine(event: event, engine: name, o) + "\n"
        }
    }
}

extension JSONText {
    /// One jsonl line of SPEC.md §4, without its newline.
    static func requestLine(event: Int, engine: String, _ o: RequestOutcome) -> String {
        "{" + requestBody(event: event, engine: engine, o) + "}"
    }

    /// The line's fields, without the braces.
    static func requestBody(event: Int, engine: String, _ o: RequestOutcome) -> String {
        var j = JSONText()
        j.raw("\"event\":\(event),\"engine\":")
        j.string(engine)
        j.raw(",")
        j.outcomeFields(o)
        return j.out
    }
}

/// `--format json`: one document for all traces (docs/REPORT.md, schema in
/// docs/report.schema.json). Findings are counted; the examples kept of each kind are listed.
///
/// One trace, summary entry, divergence or violation per line, so that a line diff of two
/// reports (a golden file against a fresh replay) points at the event that changed.
public enum JSONReport {
    /// The version of the document's layout; a consumer checks it before reading on.
    public static let schema = 2

    /// The JSON report of `reports`, with its schema version.
    public static func render(_ reports: [TraceReport]) -> String {
        var j = JSONText()
        j.raw("{\"schema\":\(schema),\"traces\":[")
        for (ti, r) in reports.enumerated() {
            j.raw(ti > 0 ? ",\n" : "\n")
            j.raw("{\"trace\":")
            j.string(r.trace)
            j.raw(",\"events\":\(r.events),\"requests\":\(r.requests),\"engines\":[")
            j.raw(r.engines.map { "\"\($0)\"" }.joined(separator: ","))
            j.raw("],\n\"summary\":{")
            for (si, s) in r.summaries.enumerated() {
                j.raw(si > 0 ? ",\n" : "\n")
                j.string(s.engine)
                j.raw(":")
                j.summaryFields(s)
            }
            j.raw("},\n\"counts\":")
            j.countFields(r)
            j.raw(",\n\"divergences\":[")
            for (di, d) in r.divergences.enumerated() {
                j.raw(di > 0 ? ",\n" : "\n")
                j.raw("{\"event\":\(d.event),\"op\":\"\(d.op)\",\"kind\":\"\(d.kind.rawValue)\",\"mark\":")
                if let m = d.mark { j.string(m) } else { j.raw("null") }
                j.raw(",\"since\":" + (d.since.map { "\($0)" } ?? "null"))
                j.raw(",\"detail\":")
                j.string(d.detail)
                j.raw(",\"outcomes\":{")
                for (oi, (name, o)) in zip(r.engines, d.outcomes).enumerated() {
                    if oi > 0 { j.raw(",") }
                    j.string(name)
                    j.raw(":{")
                    j.outcomeFields(o)
                    if oi < d.estimates.count { j.raw(",\"est_ns\":\(d.estimates[oi])") }
                    j.raw("}")
                }
                j.raw("}}")
            }
            j.raw("],\n\"violations\":[")
            for (vi, v) in r.violations.enumerated() {
                j.raw(vi > 0 ? ",\n" : "\n")
                j.raw(violationLine(v))
            }
            if let host = r.hostIOMMU {
                j.raw("],\n\"host_iommu\":[")
                for (mi, m) in host.enumerated() {
                    j.raw(mi > 0 ? ",\n" : "\n")
                    j.raw("{\"engine\":")
                    j.string(m.engine)
                    j.raw(",\"matched\":\(m.matched),\"host_calls\":\(m.hostCalls),\"engine_calls\":\(m.engineCalls),\"first_difference\":")
                    if let d = m.firstDifference { j.string(d) } else { j.raw("null") }
                    j.raw("}")
                }
            }
            j.raw("],\n\"explanations\":[")
            for (ei, e) in r.explanations.enumerated() {
                j.raw(ei > 0 ? ",\n" : "\n")
                j.raw("{\"engines\":[")
                for (ni, n) in e.engines.enumerated() {
                    if ni > 0 { j.raw(",") }
                    j.string(n)
                }
                j.raw("],\"requests\":\(e.count),\"first_event\":\(e.firstEvent),\"text\":")
                j.string(e.text)
                j.raw("}")
            }
            j.raw("],\n\"shared_failures\":[")
            for (fi, f) in r.sharedFailures.enumerated() {
                j.raw(fi > 0 ? ",\n" : "\n")
                j.raw("{\"event\":\(f.event),\"request\":")
                j.string(f.request)
                j.raw(",\"ret\":\(f.ret)}")
            }
            j.raw("],\n\"state_differences\":[")
            for (ci, c) in r.stateDifferences.enumerated() {
                j.raw(ci > 0 ? ",\n" : "\n")
                j.raw("{\"event\":\(c.event),\"locked_vm\":[\(c.lockedVM.map(String.init).joined(separator: ","))]")
                j.raw(",\"ram_refs\":[\(c.ramRefs.map(String.init).joined(separator: ","))]}")
            }
            j.raw("],\n\"costliest\":[")
            for (ci, c) in r.costliest.enumerated() {
                j.raw(ci > 0 ? ",\n" : "\n")
                j.raw("{\"event\":\(c.event),\"request\":")
                j.string(c.request)
                j.raw(",\"est_ns\":[\(c.estimates.map(String.init).joined(separator: ","))]}")
            }
            j.raw("]}")
        }
        j.raw("\n]}\n")
        return j.out
    }

    /// One violation as an object on one line.
    public static func violationLine(_ v: EngineViolation) -> String {
        var j = JSONText()
        j.raw("{\"engine\":")
        j.string(v.engine)
        j.raw(",\"event\":\(v.event),\"kind\":\"\(v.violation.kind)\",\"detail\":")
        j.string(v.violation.detail)
        j.raw("}")
        return j.out
    }

    /// One engine's figures as an object on one line: `{"engine":E,"summary":{...}}`.
    public static func summaryLine(_ s: EngineSummary) -> String {
        var j = JSONText()
        j.raw("{\"engine\":")
        j.string(s.engine)
        j.raw(",\"summary\":")
        j.summaryFields(s)
        j.raw("}")
        return j.out
    }
}

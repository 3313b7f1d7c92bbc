import TraceFormat
import VFIOModel

/// The default report, written for a kernel reviewer: a summary table per trace, then the
/// divergences grouped by kind, then each engine's invariant violations grouped by kind.
public enum TextReport {
    /// The text report of one trace: first findings, then every section, `maxExamples` examples each.
    public static func render(_ r: TraceReport, maxExamples: Int, cost: Bool) -> String {
        var out = "== \(r.trace) (\(r.form.rawValue)): \(r.events) events, \(r.requests) requests\n"
        out += firstFindings(r)
        out += "\n" + summaryTable(r)
        if cost { out += costBreakdown(r) }
        out += "\n" + divergences(r, maxExamples: maxExamples)
        out += "\n" + violations(r, maxExamples: maxExamples)
        out += "\n" + sharedFailures(r, maxExamples: maxExamples)
        out += "\n" + costliest(r, maxExamples: maxExamples)
        out += "\nresult: \(headline(r))\n"
        return out
    }

    /// What was found, named: never "diverged" where nothing could (one engine).
    public static func headline(_ r: TraceReport) -> String {
        var found: [String] = []
        if r.divergenceCount > 0 { found.append(plural(r.divergenceCount, "divergence")) }
        if r.violationCount > 0 { found.append(plural(r.violationCount, "invariant violation")) }
        let shared =
            r.sharedFailureCount > 0
            ? plural(r.sharedFailureCount, "request") + " failing on " + (r.engines.count == 1 ? "the engine" : "every engine")
            : nil
        if found.isEmpty {
            let agree = r.engines.count == 1 ? "no invariant is broken" : "the engines agree and no invariant is broken"
            return "clean: " + agree + (shared.map { " (\($0))" } ?? "")
        }
        return "found " + (found + (shared.map { [$0] } ?? [])).joined(separator: ", ")
    }

    static func plural(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

    /// The first divergence and the first violation, right under the title: where to look.
    static func firstFindings(_ r: TraceReport) -> String {
        var out = ""
        for m in r.hostIOMMU ?? [] { out += "host iommu trace: \(m.summary)\n" }
        for e in r.explanations {
            out += "why: \(e.engines.joined(separator: ", ")) (\(plural(e.count, "request")) from event \(e.firstEvent)): \(e.text)\n"
        }
        if let d = r.firstDivergence {
            out += "first divergence: event \(d.event), \(d.kind.rawValue): \(d.request)\n    \(d.detail)\n"
        }
        if let v = r.violations.first {
            out += "first violation: event \(v.event), \(v.engine): \(v.violation.kind): \(v.violation.detail)\n"
        }
        if let c = r.firstStateDifference {
            out += "state first differs after event \(c.event): \(c.describe(r.engines))\n"
        }
        return out
    }

    private static func table(_ rows: [[String]]) -> String {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
        for row in rows { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { row in
            row.enumerated().map { i, c in
                i == 0 ? c.padded(widths[i]) : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    static func summaryTable(_ r: TraceReport) -> String {
        var rows: [[String]] = [["  per engine"] + r.engines]
        func row(_ title: String, _ value: (EngineSummary) -> String) {
            rows.append(["  " + title] + r.summaries.map(value))
        }
        row("chunks mapped") { "\($0.chunksMapped)" }
        row("pages pinned") { "\($0.pagesPinned)" }
        row("locked_vm peak") { "\($0.lockedVMPeak)" }
        row("locked_vm final") { "\($0.lockedVMFinal)" }
        if EngineSummary.showsCounters(r.summaries) {
            row("locked_vm is") { $0.lockedVMCounter }
            row("pinned_vm peak") { "\($0.pinnedVMPeak)" }
        }
        for (i, name) in CostCounters().named.map(\.name).enumerated() {
            row(name) { "\($0.counters.named[i].value)" }
        }
        row("est. kernel time*") { CostModel.human(CostModel.estimate($0.counters)) }
        return table(rows) + "  * an estimate from the counters and the cost model of docs/COST.md, not a measurement\n"
    }

    static func costBreakdown(_ r: TraceReport) -> String {
        var out = "\ncost model breakdown (estimate; ns per operation from docs/COST.md):\n"
        for s in r.summaries {
            out += "  \(s.engine):\n"
            var rows: [[String]] = []
            for b in CostModel.breakdown(s.counters) where b.count > 0 {
                rows.append(["    " + b.counter, "\(b.count) ×", "\(b.perOp) ns", "= " + CostModel.human(b.ns)])
            }
            rows.append(["    total", "", "", "= " + CostModel.human(CostModel.estimate(s.counters))])
            out += table(rows)
        }
        return out
    }

    /// Divergences grouped by kind; those that came while the engines' state already differed
    /// are folded under that earlier cause.
    static func divergences(_ r: TraceReport, maxExamples: Int) -> String {
        guard r.divergenceCount > 0 else {
            return r.stoppedEngines.map { "divergences: none among the requests every engine ran (\($0))\n" } ?? "divergences: none\n"
        }
        var out = "divergences: \(r.divergenceCount)"
        if r.divergenceCount > r.divergences.count { out += " (\(r.divergences.count) kept as examples)" }
        out += "\n"
        let (direct, causes) = r.divergencesByCause()
        out += groups(direct, r, maxExamples: maxExamples, indent: "  ", counted: r.divergences.count == r.divergenceCount ? nil : r)
        for (event, cause, group) in causes {
            out += "  since event \(event): \(cause?.describe(r.engines) ?? "the engines' state differs"); "
            out += plural(group.count, "request") + (group.count == 1 ? " follows" : " follow") + "\n"
            out += groups(group, r, maxExamples: maxExamples, indent: "    ", counted: nil)
        }
        return out
    }

    private static func groups(_ list: [Divergence], _ r: TraceReport, maxExamples: Int, indent: String, counted: TraceReport?) -> String {
        var out = ""
        let width = r.engines.map(\.count).max() ?? 0
        for kind in DivergenceKind.allCases {
            let group = list.filter { $0.kind == kind }
            guard !group.isEmpty else { continue }
            out += "\(indent)\(kind.title): \(plural(group.count, "request"))"
            out += group.count > maxExamples ? ", first \(maxExamples):\n" : "\n"
            for d in group.prefix(maxExamples) {
                out += "\(indent)  event \(d.event)" + (d.mark.map { " (after mark \"\($0)\")" } ?? "") + ": \(d.request)\n"
                for (i, (name, o)) in zip(r.engines, d.outcomes).enumerated() {
                    let est = i < d.estimates.count ? "  [est. \(CostModel.human(d.estimates[i]))]" : ""
                    out += "\(indent)    \(name.padded(width))  \(outcomeText(o))\(est)\n"
                }
                out += "\(indent)    \(d.detail)\n"
            }
        }
        if let counted {
            // Examples were capped: the counts of every kind, from the totals.
            out += "\(indent)in all: " + SummaryReport.divergences(counted) + "\n"
        }
        return out
    }

    /// Requests that failed alike on every engine: no divergence, but worth a look (a map
    /// refused for lack of memlock everywhere reads clean otherwise).
    static func sharedFailures(_ r: TraceReport, maxExamples: Int) -> String {
        let title = r.engines.count == 1 ? "failed requests" : "requests failing alike on every engine"
        guard r.sharedFailureCount > 0 else { return "\(title): none\n" }
        var out = "\(title): \(r.sharedFailureCount)" + (r.sharedFailureCount > maxExamples ? ", first \(maxExamples):\n" : "\n")
        for f in r.sharedFailures.prefix(maxExamples) {
            out += "  event \(f.event)" + (f.mark.map { " (after mark \"\($0)\")" } ?? "") + ": \(f.request) → \(retName(f.ret))\n"
        }
        return out
    }

    /// The most expensive requests by estimated kernel time, each engine's estimate beside.
    static func costliest(_ r: TraceReport, maxExamples: Int) -> String {
        let list = r.costliestShown(maxExamples)
        guard !list.isEmpty else { return "costliest requests: none\n" }
        var rows: [[String]] = [["  costliest requests (estimated)"] + r.engines]
        for c in list {
            let request = c.request.count > 48 ? String(c.request.prefix(47)) + "…" : c.request
            rows.append(["  event \(c.event): \(request)"] + c.estimates.map(CostModel.human))
        }
        return table(rows)
    }

    static func outcomeText(_ o: RequestOutcome) -> String {
        switch o {
        case let .map(ret, chunks, locked):
            let pages = chunks.reduce(0) { $0 + $1.npage }
            var s = "ret \(retName(ret)), \(chunks.count) chunk\(chunks.count == 1 ? "" : "s") (\(pages) pages)"
            if let c = chunks.first { s += " first \(c)" }
            return s + ", locked_vm \(locked)"
        case let .unmap(ret, unmapped, locked):
            return "ret \(retName(ret)), unmapped \(hex(unmapped)), locked_vm \(locked)"
        case let .pin(ret, pfns, locked):
            return
                "ret \(retName(ret)), pfns [\(pfns.prefix(8).map(\.description).joined(separator: ", "))\(pfns.count > 8 ? ", …" : "")], locked_vm \(locked)"
        case let .unpin(ret, locked):
            return "ret \(retName(ret)), locked_vm \(locked)"
        case .notRun:
            return "not run (the engine crashed at an earlier event)"
        }
    }

    static func violations(_ r: TraceReport, maxExamples: Int) -> String {
        guard r.violationCount > 0 else { return "invariant violations: none\n" }
        var out = "invariant violations: \(r.violationCount)\n"
        for (engine, kinds) in r.violationGroups(maxExamples: maxExamples) {
            out += "  \(engine):\n"
            for (kind, total, examples) in kinds {
                out += "    \(kind): \(total)" + (total > examples.count ? ", first \(examples.count):\n" : "\n")
                for v in examples {
                    out += "      event \(v.event): \(v.violation.detail)\n"
                }
            }
        }
        return out
    }
}

/// `replay --summary`: one row per trace, for a run over many.
public enum SummaryReport {
    /// One row per trace, as text.
    public static func text(_ reports: [TraceReport]) -> String {
        let engines = reports.first?.engines ?? []
        var rows: [[String]] = [["trace", "events", "requests", "divergences", "violations"] + engines.map { "est. " + $0 }]
        for r in reports {
            rows.append(
                [r.trace, "\(r.events)", "\(r.requests)", divergences(r), violations(r)]
                    + r.summaries.map { CostModel.human(CostModel.estimate($0.counters)) })
        }
        var widths = [Int](repeating: 0, count: rows[0].count)
        for row in rows { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { row in
            row.enumerated().map { i, c in
                i == 0 || i == 3 || i == 4 ? c.padded(widths[i]) : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ").trimmingTrailingBlanks()
        }.joined(separator: "\n") + "\n"
    }

    /// "mapping 2, accounting 1", or "-".
    static func divergences(_ r: TraceReport) -> String {
        let parts = DivergenceKind.allCases.filter { r.count($0) > 0 }.map { "\($0.rawValue) \(r.count($0))" }
        return parts.isEmpty ? "-" : parts.joined(separator: ", ")
    }

    /// "foreign-pfn 2, leak 2" over all engines, or "-".
    static func violations(_ r: TraceReport) -> String {
        var byKind: [ViolationKind: Int] = [:]
        for (k, n) in r.violationCounts { byKind[k.kind, default: 0] += n }
        let parts = ViolationKind.allCases.compactMap { k in byKind[k].map { "\(k) \($0)" } }
        return parts.isEmpty ? "-" : parts.joined(separator: ", ")
    }

    /// One object per trace, as JSON.
    public static func json(_ reports: [TraceReport]) -> String {
        var j = JSONText()
        j.raw("{\"schema\":\(JSONReport.schema),\"summary\":[")
        for (i, r) in reports.enumerated() {
            j.raw(i > 0 ? ",\n" : "\n")
            j.raw("{\"trace\":")
            j.string(r.trace)
            j.raw(",\"events\":\(r.events),\"requests\":\(r.requests),\"counts\":")
            j.countFields(r)
            j.raw(",\"est_ns\":{")
            j.raw(r.summaries.map { "\"\($0.engine)\":\(CostModel.estimate($0.counters))" }.joined(separator: ","))
            j.raw("}}")
        }
        j.raw("\n]}\n")
        return j.out
    }
}

extension String {
    func trimmingTrailingBlanks() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

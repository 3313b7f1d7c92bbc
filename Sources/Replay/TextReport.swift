import TraceFormat
import VFIOModel

/// The default report, written for a kernel reviewer: a summary table per trace, then the
/// divergences grouped by kind, then each engine's invariant violations grouped by kind.
public enum TextReport {
    public static func render(_ r: TraceReport, maxExamples: Int, cost: Bool) -> String {
        var out = "== \(r.trace) (\(r.form.rawValue)): \(r.events) events, \(r.requests) requests\n\n"
        out += summaryTable(r)
        if cost { out += costBreakdown(r) }
        out += "\n" + divergences(r, maxExamples: maxExamples)
        out += "\n" + violations(r, maxExamples: maxExamples)
        let verdict =
            r.isClean
            ? "clean: the engines agree and no invariant is broken"
            : "DIVERGED: \(r.divergences.count) divergence\(r.divergences.count == 1 ? "" : "s"), "
                + "\(r.violations.count) invariant violation\(r.violations.count == 1 ? "" : "s")"
        out += "\nresult: \(verdict)\n"
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

    static func divergences(_ r: TraceReport, maxExamples: Int) -> String {
        guard !r.divergences.isEmpty else { return "divergences: none\n" }
        var out = "divergences: \(r.divergences.count)\n"
        for kind in DivergenceKind.allCases {
            let group = r.divergences.filter { $0.kind == kind }
            guard !group.isEmpty else { continue }
            out += "  \(kind.title): \(group.count) request\(group.count == 1 ? "" : "s")"
            out += group.count > maxExamples ? ", first \(maxExamples):\n" : "\n"
            for d in group.prefix(maxExamples) {
                out += "    event \(d.event)" + (d.mark.map { " (after mark \"\($0)\")" } ?? "") + ": \(d.request)\n"
                let width = r.engines.map(\.count).max() ?? 0
                for (name, o) in zip(r.engines, d.outcomes) {
                    out += "      \(name.padded(width))  \(outcomeText(o))\n"
                }
                out += "      \(d.detail)\n"
            }
        }
        return out
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
            return "ret \(retName(ret)), pfns [\(pfns.prefix(8).map(\.description).joined(separator: ", "))\(pfns.count > 8 ? ", …" : "")], locked_vm \(locked)"
        case let .unpin(ret, locked):
            return "ret \(retName(ret)), locked_vm \(locked)"
        }
    }

    static func violations(_ r: TraceReport, maxExamples: Int) -> String {
        guard !r.violations.isEmpty else { return "invariant violations: none\n" }
        var out = "invariant violations: \(r.violations.count)\n"
        for engine in r.engines {
            let mine = r.violations.filter { $0.engine == engine }
            guard !mine.isEmpty else { continue }
            out += "  \(engine):\n"
            for kind in ["foreign-pfn", "refcount-underflow", "leak"] {
                let group = mine.filter { $0.violation.kind == kind }
                guard !group.isEmpty else { continue }
                out += "    \(kind): \(group.count)" + (group.count > maxExamples ? ", first \(maxExamples):\n" : "\n")
                for v in group.prefix(maxExamples) {
                    out += "      event \(v.event): \(v.violation.detail)\n"
                }
            }
        }
        return out
    }
}

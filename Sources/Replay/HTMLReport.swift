import TraceFormat
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// `replay --format html`: one self-contained page (inline CSS and SVG, no script, no font or
/// image from elsewhere) with, per trace, the first findings, the address space as a map with
/// the findings placed on it, each engine's estimated cost, and the divergences with the
/// engines' chunk lists side by side. Its size is bounded: examples are capped as in the text
/// report, the map draws at most `maxBoxes` boxes and merges what falls on one pixel.
public enum HTMLReport {
    /// Boxes the address-space map draws; more VMAs are gathered into boxes of several.
    static let maxBoxes = 120
    /// Rows of the VMA table.
    static let vmaRows = 40
    /// Chunks shown from the start of an outcome, and around its first differing chunk.
    static let chunksHead = 8
    static let chunksAround = 8

    /// The page for `traces`, each with the map its replay drew.
    public static func render(_ traces: [(report: TraceReport, map: AddressMap)], maxExamples: Int) -> String {
        var h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        let title = traces.count == 1 ? traces[0].report.trace : "\(traces.count) traces"
        h += "<title>pinreplay: \(esc(title))</title>\n<style>\(css)</style>\n</head>\n<body>\n"
        h += "<header><h1>pinreplay report</h1>"
        if let engines = traces.first?.report.engines {
            h += "<p>Engines: " + engines.map { "<b>\(esc($0))</b>" }.joined(separator: ", ")
            h +=
                " (the first is the reference). Times are estimates from the counters and the cost model of docs/COST.md, not measurements.</p>"
        }
        h += "</header>\n"
        if traces.count > 1 { h += summary(traces.map(\.report)) }
        for (i, t) in traces.enumerated() {
            h += trace(t.report, t.map, id: "t\(i + 1)", maxExamples: maxExamples)
        }
        h += "</body>\n</html>\n"
        return h
    }

    // MARK: - Sections

    static func summary(_ reports: [TraceReport]) -> String {
        let engines = reports.first?.engines ?? []
        var h = "<section id=\"summary\"><h2>Traces</h2>\n<table>\n<tr><th>trace</th><th>events</th><th>requests</th>"
        h += "<th>divergences</th><th>violations</th>" + engines.map { "<th>est. \(esc($0))</th>" }.joined() + "</tr>\n"
        for (i, r) in reports.enumerated() {
            h += "<tr class=\"\(r.isClean ? "clean" : "found")\"><td><a href=\"#t\(i + 1)\">\(esc(r.trace))</a></td>"
            h += "<td class=\"num\">\(r.events)</td><td class=\"num\">\(r.requests)</td>"
            h += "<td>\(esc(SummaryReport.divergences(r)))</td><td>\(esc(SummaryReport.violations(r)))</td>"
            h += r.summaries.map { "<td class=\"num\">\(CostModel.human(CostModel.estimate($0.counters)))</td>" }.joined()
            h += "</tr>\n"
        }
        return h + "</table></section>\n"
    }

    static func trace(_ r: TraceReport, _ map: AddressMap, id: String, maxExamples: Int) -> String {
        var h =
            "<section class=\"trace\" id=\"\(id)\">\n<h2>\(esc(r.trace)) <small>(\(r.form.rawValue)): \(r.events) events, \(r.requests) requests</small></h2>\n"
        h += "<p class=\"headline \(r.isClean ? "clean" : "found")\">\(esc(TextReport.headline(r)))</p>\n"
        for m in r.hostIOMMU ?? [] {
            h += "<p class=\"why\">host iommu trace: \(esc(m.summary))</p>\n"
        }
        for e in r.explanations {
            h +=
                "<p class=\"why\"><b>\(esc(e.engines.joined(separator: ", ")))</b> (\(e.count) from event \(e.firstEvent)): \(esc(e.text))</p>\n"
        }
        h += first(r, id: id)
        h += addressSpace(r, map, id: id)
        h += cost(r, id: id)
        h += divergences(r, map, id: id, maxExamples: maxExamples)
        h += violations(r, map, id: id, maxExamples: maxExamples)
        h += sharedFailures(r, id: id, maxExamples: maxExamples)
        h += costliest(r, id: id, maxExamples: maxExamples)
        return h + "</section>\n"
    }

    /// The first divergence, the first violation and where the state first differed: the
    /// first cause first.
    static func first(_ r: TraceReport, id: String) -> String {
        var items: [String] = []
        if let d = r.firstDivergence {
            items.append(
                "<li><b>First divergence</b>: <a href=\"#\(id)-event-\(d.event)\">event \(d.event)</a>, \(d.kind.rawValue): "
                    + "<code>\(esc(d.request))</code><br>\(esc(d.detail))</li>")
        }
        if let v = r.violations.first {
            items.append(
                "<li><b>First violation</b>: event \(v.event), \(esc(v.engine)): \(v.violation.kind): \(esc(v.violation.detail))</li>")
        }
        if let c = r.firstStateDifference {
            items.append("<li><b>State first differs</b> after event \(c.event): \(esc(c.describe(r.engines)))</li>")
        }
        guard !items.isEmpty else { return "" }
        return "<div class=\"first\" id=\"\(id)-first\"><ul>\n" + items.joined(separator: "\n") + "\n</ul></div>\n"
    }

    // MARK: - The address space

    /// One drawn box: a VMA, or several neighbouring ones when there are many.
    struct Box {
        var start: UInt64
        var end: UInt64
        var kind: VMAKind
        var vmas: Int
        var name: String
        var gapBefore: Bool
        var x = 0.0
        var width = 0.0
    }

    static let mapWidth = 1100.0
    static let gapWidth = 14.0

    /// Boxes laid out left to right: widths grow with the logarithm of the size, the gaps
    /// between VMAs are cut to `gapWidth`.
    static func layout(_ vmas: [(start: UInt64, end: UInt64, kind: VMAKind, name: String)]) -> [Box] {
        guard !vmas.isEmpty else { return [] }
        let per = (vmas.count + maxBoxes - 1) / maxBoxes
        var boxes: [Box] = []
        var previousEnd: UInt64?
        for i in stride(from: 0, to: vmas.count, by: per) {
            let group = vmas[i..<min(i + per, vmas.count)]
            var bytes: [VMAKind: UInt64] = [:]
            for v in group { bytes[v.kind, default: 0] += v.end - v.start }
            // The kind with the most bytes; the earlier kind on a tie.
            var dominant = VMAKind.ram
            for k in VMAKind.allCases where (bytes[k] ?? 0) > (bytes[dominant] ?? 0) { dominant = k }
            guard let first = group.first, let last = group.last else { continue }
            boxes.append(
                Box(
                    start: first.start, end: last.end, kind: dominant, vmas: group.count,
                    name: group.count == 1 ? first.name : "\(group.count) VMAs",
                    gapBefore: previousEnd.map { first.start > $0 } ?? false))
            previousEnd = last.end
        }
        let gaps = Double(boxes.filter(\.gapBefore).count)
        let avail = mapWidth - gaps * gapWidth
        var weights = boxes.map { 1 + log2(Double(max(1, ($0.end - $0.start) >> VFIOModel.PAGE_SHIFT))) }
        // At least 3 px each, so a 4 KiB VMA beside a 1 TiB one still shows.
        let floor = weights.reduce(0, +) * 3 / avail
        weights = weights.map { max($0, floor) }
        let total = weights.reduce(0, +)
        var x = 0.0
        for i in boxes.indices {
            if boxes[i].gapBefore { x += gapWidth }
            boxes[i].x = x
            boxes[i].width = avail * weights[i] / total
            x += boxes[i].width
        }
        return boxes
    }

    /// The index of the first box that ends above `vaddr` (binary search; boxes are sorted).
    static func firstBox(endingAbove vaddr: UInt64, _ boxes: [Box]) -> Int {
        var lo = 0
        var hi = boxes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if boxes[mid].end <= vaddr { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Where `vaddr` lies on the map: inside its box, or at the edge of the nearest one.
    static func position(_ vaddr: UInt64, _ boxes: [Box]) -> Double? {
        guard let last = boxes.last else { return nil }
        let lo = firstBox(endingAbove: vaddr, boxes)
        guard lo < boxes.count else { return last.x + last.width }
        let b = boxes[lo]
        guard vaddr >= b.start else { return b.x }
        return b.x + b.width * Double(vaddr - b.start) / Double(b.end - b.start)
    }

    /// Ranges drawn over the boxes, merged where they fall on the same pixel.
    static func spans(_ ranges: [(start: UInt64, end: UInt64)], _ boxes: [Box]) -> [(x0: Double, x1: Double)] {
        var out: [(x0: Double, x1: Double)] = []
        for r in ranges {
            var i = firstBox(endingAbove: r.start, boxes)
            while i < boxes.count && boxes[i].start < r.end {
                let b = boxes[i]
                let s = max(r.start, b.start)
                let e = min(r.end, b.end)
                let x0 = b.x + b.width * Double(s - b.start) / Double(b.end - b.start)
                let x1 = max(x0 + 1, b.x + b.width * Double(e - b.start) / Double(b.end - b.start))
                if let last = out.last, x0 <= last.x1 + 0.5 {
                    out[out.count - 1].x1 = max(last.x1, x1)
                } else {
                    out.append((x0, x1))
                }
                i += 1
            }
        }
        return out
    }

    static func color(_ k: VMAKind) -> String {
        switch k {
        case .ram: "#4c9a5f"
        case .rom: "#d9a43a"
        case .bar: "#7b5bb6"
        case .other: "#9aa0a6"
        }
    }

    static func addressSpace(_ r: TraceReport, _ map: AddressMap, id: String) -> String {
        var h = "<h3 id=\"\(id)-map\">Address space</h3>\n"
        guard !map.vmas.isEmpty else { return h + "<p>The trace declares no VMA.</p>\n" }
        let boxes = layout(map.vmas)
        var svg =
            "<svg class=\"map\" viewBox=\"0 0 \(Int(mapWidth)) 140\" width=\"\(Int(mapWidth))\" height=\"140\" role=\"img\" aria-label=\"address space map\">\n"
        for (i, b) in boxes.enumerated() {
            if b.gapBefore, i > 0 {
                let gx = b.x - gapWidth / 2
                svg +=
                    "<path d=\"M\(f1(gx - 3)) 58 L\(f1(gx + 1)) 26 M\(f1(gx)) 58 L\(f1(gx + 4)) 26\" stroke=\"#8c959f\" stroke-width=\"1.2\"/>\n"
            }
            let tip =
                "\(b.name.isEmpty ? b.kind.rawValue : b.name): \(hex(b.start))–\(hex(b.end)), \(humanBytes(b.end - b.start)), \(b.kind.rawValue)"
            svg +=
                "<rect class=\"vma \(b.kind.rawValue.lowercased())\" x=\"\(f1(b.x))\" y=\"24\" width=\"\(f1(max(1, b.width - 1)))\" height=\"36\" fill=\"\(color(b.kind))\"><title>\(esc(tip))</title></rect>\n"
            if b.width >= 56 {
                let cx = f1(b.x + b.width / 2)
                svg +=
                    "<text x=\"\(cx)\" y=\"114\" text-anchor=\"middle\" class=\"lbl\">\(b.kind.rawValue) \(humanBytes(b.end - b.start))</text>\n"
                let chars = Int(b.width / 6.4)
                let name = b.name.count > chars ? String(b.name.prefix(max(1, chars - 1))) + "…" : b.name
                svg += "<text x=\"\(cx)\" y=\"128\" text-anchor=\"middle\" class=\"sub\">\(esc(name))</text>\n"
            }
        }
        for s in spans(map.mapped, boxes) {
            svg += "<rect class=\"dma\" x=\"\(f1(s.x0))\" y=\"64\" width=\"\(f1(s.x1 - s.x0))\" height=\"9\" fill=\"#2b6cb0\"/>\n"
        }
        for s in spans(map.failed, boxes) {
            svg +=
                "<rect class=\"dma-failed\" x=\"\(f1(s.x0))\" y=\"64\" width=\"\(f1(s.x1 - s.x0))\" height=\"9\" fill=\"url(#\(id)-hatch)\"/>\n"
        }
        var placed: Set<String> = []
        for m in map.markers {
            // Kept inside the picture: a finding at the first page would show half a marker.
            guard let at = position(m.start, boxes) else { continue }
            let x = min(max(at, 6), mapWidth - 6)
            let key = "\(f1(x))/\(m.finding)"
            let what: String
            switch m.finding {
            case .divergence(let k): what = "divergence (\(k.rawValue))"
            case .violation(let k): what = "violation (\(k))"
            }
            let tip = "event \(m.event): \(what): \(map.requests[m.event] ?? "")"
            guard placed.insert(key).inserted else { continue }
            switch m.finding {
            case .divergence:
                svg +=
                    "<g class=\"marker divergence\"><title>\(esc(tip))</title><line x1=\"\(f1(x))\" y1=\"22\" x2=\"\(f1(x))\" y2=\"76\" stroke=\"#d62728\" stroke-width=\"1.5\"/>"
                svg += "<path d=\"M\(f1(x)) 78 l-6 11 h12 z\" fill=\"#d62728\"/></g>\n"
            case .violation:
                svg +=
                    "<g class=\"marker violation\"><title>\(esc(tip))</title><line x1=\"\(f1(x))\" y1=\"22\" x2=\"\(f1(x))\" y2=\"90\" stroke=\"#ff7f0e\" stroke-width=\"1.5\" stroke-dasharray=\"3 2\"/>"
                svg += "<path d=\"M\(f1(x)) 90 l6 6 l-6 6 l-6 -6 z\" fill=\"#ff7f0e\"/></g>\n"
            }
        }
        svg += "<defs><pattern id=\"\(id)-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
        svg += "<rect width=\"3\" height=\"6\" fill=\"#d62728\"/></pattern></defs>\n</svg>\n"
        h += "<div class=\"scroll\">" + svg + "</div>\n<p class=\"legend\">"
        for k in VMAKind.allCases where boxes.contains(where: { $0.kind == k }) {
            h += "<span><i class=\"sw\" style=\"background:\(color(k))\"></i>\(k.rawValue)</span>"
        }
        h += "<span><i class=\"sw\" style=\"background:#2b6cb0\"></i>DMA-mapped</span>"
        if !map.failed.isEmpty { h += "<span><i class=\"sw\" style=\"background:#d62728\"></i>map failed on every engine</span>" }
        h += "<span><b class=\"mk div\">▲</b> divergence</span><span><b class=\"mk vio\">◆</b> violation</span></p>\n"
        var notes = ["Widths grow with the logarithm of the size; the gaps between VMAs are cut out."]
        if boxes.count < map.vmas.count { notes.append("\(map.vmas.count) VMAs drawn as \(boxes.count) boxes of neighbours.") }
        let unplaced = r.violations.filter { v in !map.markers.contains { $0.event == v.event } }.count
        if unplaced > 0 {
            notes.append("\(unplaced) violation\(unplaced == 1 ? "" : "s") found at teardown or outside any map, not placed.")
        }
        if map.dropped > 0 { notes.append("\(map.dropped) VMAs or map ranges past the first \(AddressMap.maxRuns) extents are not drawn.") }
        h += "<p class=\"note\">" + esc(notes.joined(separator: " ")) + "</p>\n"
        return h + vmaTable(map)
    }

    static func vmaTable(_ map: AddressMap) -> String {
        var h = "<table class=\"vmas\">\n<tr><th>VMA</th><th>size</th><th>kind</th><th>name</th><th>DMA-mapped</th><th>findings</th></tr>\n"
        var m = 0
        for v in map.vmas.prefix(vmaRows) {
            var mapped: UInt64 = 0
            while m < map.mapped.count && map.mapped[m].end <= v.start { m += 1 }
            var k = m
            while k < map.mapped.count && map.mapped[k].start < v.end {
                mapped += min(v.end, map.mapped[k].end) - max(v.start, map.mapped[k].start)
                k += 1
            }
            let findings = map.markers.filter { $0.start < v.end && $0.start >= v.start }.count
            h += "<tr><td class=\"num\">\(hex(v.start))–\(hex(v.end))</td><td class=\"num\">\(humanBytes(v.end - v.start))</td>"
            h += "<td><i class=\"sw\" style=\"background:\(color(v.kind))\"></i>\(v.kind.rawValue)</td><td>\(esc(v.name))</td>"
            h +=
                "<td class=\"num\">\(mapped == 0 ? "-" : humanBytes(mapped))</td><td class=\"num\">\(findings == 0 ? "-" : "\(findings)")</td></tr>\n"
        }
        if map.vmas.count > vmaRows { h += "<tr><td colspan=\"6\">… \(map.vmas.count - vmaRows) more</td></tr>\n" }
        return h + "</table>\n"
    }

    // MARK: - Cost

    static func cost(_ r: TraceReport, id: String) -> String {
        var h = "<h3 id=\"\(id)-cost\">Estimated kernel time per engine</h3>\n"
        let ns = r.summaries.map { CostModel.estimate($0.counters) }
        if let top = ns.max(), top > 0 {
            let low = ns.filter { $0 > 0 }.min() ?? top
            let lo = floor(log10(Double(low)))
            let hi = max(lo + 1, ceil(log10(Double(top))))
            let left = 100.0
            let full = 360.0
            let height = 26 + 24 * ns.count
            var svg =
                "<svg class=\"cost\" viewBox=\"0 0 540 \(height)\" width=\"540\" height=\"\(height)\" role=\"img\" aria-label=\"estimated cost per engine\">\n"
            for d in Int(lo)...Int(hi) {
                let x = left + full * (Double(d) - lo) / (hi - lo)
                svg += "<line x1=\"\(f1(x))\" y1=\"16\" x2=\"\(f1(x))\" y2=\"\(height)\" stroke=\"#d0d7de\"/>"
                svg +=
                    "<text x=\"\(f1(x))\" y=\"12\" text-anchor=\"middle\" class=\"sub\">\(CostModel.human(Int(pow(10, Double(d)))))</text>\n"
            }
            for (i, (name, v)) in zip(r.engines, ns).enumerated() {
                let y = 22 + 24 * i
                let w = v > 0 ? max(2, full * (log10(Double(v)) - lo) / (hi - lo)) : 0
                svg += "<text x=\"0\" y=\"\(y + 13)\" class=\"lbl\">\(esc(name))</text>"
                svg +=
                    "<rect class=\"bar\" x=\"\(f1(left))\" y=\"\(y)\" width=\"\(f1(w))\" height=\"17\" fill=\"\(i == 0 ? "#57606a" : "#2b6cb0")\"><title>\(esc(name)): \(CostModel.human(v))</title></rect>"
                svg += "<text x=\"\(f1(left + w + 6))\" y=\"\(y + 13)\" class=\"lbl\">\(CostModel.human(v))</text>\n"
            }
            h += "<div class=\"side\"><div>" + svg + "</svg><p class=\"note\">Logarithmic scale.</p></div>\n"
        } else {
            h += "<div class=\"side\"><p>No engine did anything the cost model counts.</p>\n"
        }
        var t =
            "<div class=\"scroll\"><table class=\"counters\">\n<tr><th>per engine</th>" + r.engines.map { "<th>\(esc($0))</th>" }.joined()
            + "</tr>\n"
        func row(_ title: String, _ value: (EngineSummary) -> String) {
            let cells = r.summaries.map(value)
            let differ = Set(cells).count > 1
            t +=
                "<tr\(differ ? " class=\"differs\"" : "")><td>\(title)</td>" + cells.map { "<td class=\"num\">\($0)</td>" }.joined()
                + "</tr>\n"
        }
        row("chunks mapped") { "\($0.chunksMapped)" }
        row("pages pinned") { "\($0.pagesPinned)" }
        row("locked_vm peak") { "\($0.lockedVMPeak)" }
        row("locked_vm final") { "\($0.lockedVMFinal)" }
        if EngineSummary.showsCounters(r.summaries) {
            row("locked_vm is") { esc($0.lockedVMCounter) }
            row("pinned_vm peak") { "\($0.pinnedVMPeak)" }
        }
        for (i, name) in CostCounters().named.map(\.name).enumerated() {
            row("<code>\(name)</code>") { "\($0.counters.named[i].value)" }
        }
        row("est. kernel time") { CostModel.human(CostModel.estimate($0.counters)) }
        return h + t + "</table></div></div>\n"
    }

    // MARK: - Findings

    static func divergences(_ r: TraceReport, _ map: AddressMap, id: String, maxExamples: Int) -> String {
        var h = "<h3 id=\"\(id)-divergences\">Divergences: \(r.divergenceCount)"
        if r.divergenceCount > r.divergences.count { h += " <small>(\(r.divergences.count) kept as examples)</small>" }
        h += "</h3>\n"
        guard r.divergenceCount > 0 else {
            if let stopped = r.stoppedEngines { return h + "<p>None among the requests every engine ran (\(esc(stopped))).</p>\n" }
            return h + "<p>None: every engine gave the same outcome for every request.</p>\n"
        }
        let (direct, causes) = r.divergencesByCause()
        h += groups(direct, r, map, id: id, maxExamples: maxExamples)
        // As many causes as examples of a kind: a churn trace may have thousands.
        for (event, cause, group) in causes.prefix(maxExamples) {
            h += "<div class=\"since\"><p><b>Since event \(event)</b>: \(esc(cause?.describe(r.engines) ?? "the engines' state differs")); "
            h += TextReport.plural(group.count, "request") + (group.count == 1 ? " follows" : " follow") + ".</p>\n"
            h += groups(group, r, map, id: id, maxExamples: maxExamples) + "</div>\n"
        }
        if causes.count > maxExamples {
            h += "<p class=\"note\">… divergences following \(causes.count - maxExamples) later state differences are not shown.</p>\n"
        }
        if r.divergenceCount > r.divergences.count {
            h += "<p class=\"note\">In all: " + esc(SummaryReport.divergences(r)) + ".</p>\n"
        }
        return h
    }

    static func groups(_ list: [Divergence], _ r: TraceReport, _ map: AddressMap, id: String, maxExamples: Int) -> String {
        var h = ""
        for kind in DivergenceKind.allCases {
            let group = list.filter { $0.kind == kind }
            guard !group.isEmpty else { continue }
            h += "<h4>\(esc(kind.title)): \(TextReport.plural(group.count, "request"))"
            h += group.count > maxExamples ? ", first \(maxExamples)</h4>\n" : "</h4>\n"
            for d in group.prefix(maxExamples) { h += divergence(d, r, map, id: id) }
        }
        return h
    }

    static func divergence(_ d: Divergence, _ r: TraceReport, _ map: AddressMap, id: String) -> String {
        var h = "<article class=\"divergence\" id=\"\(id)-event-\(d.event)\">\n"
        h += "<p><b>event \(d.event)</b>: <code>\(esc(d.request))</code>"
        if let mark = d.mark { h += " <span class=\"mark\">after mark “\(esc(mark))”</span>" }
        h += "<br>\(esc(d.detail))</p>\n"
        h += "<div class=\"outcomes\" style=\"grid-template-columns:repeat(\(d.outcomes.count),minmax(300px,1fr))\">\n"
        let labels = map.pfnLabels[d.event]
        for (i, o) in d.outcomes.enumerated() {
            // Each engine against the reference; the reference against the first engine that differs.
            let other = i > 0 ? d.outcomes[0] : d.outcomes.dropFirst().first { $0 != o } ?? o
            h += "<div class=\"outcome\"><h5>\(esc(i < r.engines.count ? r.engines[i] : "?"))</h5>\n"
            let est = i < d.estimates.count ? ", est. \(CostModel.human(d.estimates[i]))" : ""
            h += "<p>ret <b>\(retName(o.ret))</b>, locked_vm \(o.lockedVM)\(est)</p>\n"
            let engineLabels = labels.flatMap { i < $0.count ? $0[i] : nil } ?? []
            h += outcomeDetail(o, against: other, labels: engineLabels)
            h += "</div>\n"
        }
        return h + "</div>\n</article>\n"
    }

    /// The chunk list (or pinned pfns) of an outcome: the first chunks and those around the
    /// first that the other engine does not have, which are highlighted.
    static func outcomeDetail(_ o: RequestOutcome, against other: RequestOutcome, labels: [[PfnSpan]]) -> String {
        switch o {
        case let .map(_, chunks, _):
            let pages = chunks.reduce(0) { $0 + $1.npage }
            var h = "<p>\(TextReport.plural(chunks.count, "chunk")), \(pages) pages</p>\n"
            guard !chunks.isEmpty else { return h }
            var theirs: Set<Chunk> = []
            if case .map(_, let c, _) = other { theirs = Set(c) }
            let firstDiff = chunks.firstIndex { !theirs.contains($0) }
            var shown = Set(0..<min(chunksHead, chunks.count))
            if let f = firstDiff { shown.formUnion(max(0, f - 2)..<min(chunks.count, f - 2 + chunksAround)) }
            h += "<table class=\"chunks\"><tr><th>iova</th><th>pfn</th><th>npage</th><th>frames</th></tr>\n"
            var previous = -1
            for i in shown.sorted() {
                if i > previous + 1 { h += "<tr class=\"gap\"><td colspan=\"4\">… \(i - previous - 1) more</td></tr>\n" }
                previous = i
                let c = chunks[i]
                h +=
                    "<tr\(theirs.contains(c) ? "" : " class=\"diff\"")><td>\(c.iova)</td><td>\(c.pfn)</td><td class=\"num\">\(c.npage)</td>"
                h += "<td>\(i < labels.count ? tags(labels[i]) : "")</td></tr>\n"
            }
            if previous < chunks.count - 1 { h += "<tr class=\"gap\"><td colspan=\"4\">… \(chunks.count - 1 - previous) more</td></tr>\n" }
            return h + "</table>\n"
        case let .pin(_, pfns, _):
            var h = "<p>\(TextReport.plural(pfns.count, "pfn")) pinned</p>\n"
            guard !pfns.isEmpty else { return h }
            var theirs: Set<PFN> = []
            if case .pin(_, let p, _) = other { theirs = Set(p) }
            h += "<table class=\"chunks\"><tr><th>pfn</th><th>frame</th></tr>\n"
            for (i, p) in pfns.prefix(chunksHead + chunksAround).enumerated() {
                h +=
                    "<tr\(theirs.contains(p) ? "" : " class=\"diff\"")><td>\(p)</td><td>\(i < labels.count ? tags(labels[i]) : "")</td></tr>\n"
            }
            if pfns.count > chunksHead + chunksAround {
                h += "<tr class=\"gap\"><td colspan=\"2\">… \(pfns.count - chunksHead - chunksAround) more</td></tr>\n"
            }
            return h + "</table>\n"
        case .unmap(_, let unmapped, _):
            return "<p>unmapped \(hex(unmapped)) (\(humanBytes(unmapped)))</p>\n"
        case .unpin:
            return ""
        case .notRun:
            return "<p>not run: the engine crashed at an earlier event</p>\n"
        }
    }

    /// `zero page` `reserved ×31`: the classes of a chunk's frames, in order.
    static func tags(_ spans: [PfnSpan]) -> String {
        spans.prefix(4).map { s in
            let cls = s.label == .zeroPage ? "zero" : s.label.rawValue
            return "<span class=\"tag \(cls)\">\(s.label.rawValue)\(s.pages > 1 ? " ×\(s.pages)" : "")</span>"
        }.joined() + (spans.count > 4 ? "…" : "")
    }

    static func violations(_ r: TraceReport, _ map: AddressMap, id: String, maxExamples: Int) -> String {
        var h = "<h3 id=\"\(id)-violations\">Invariant violations: \(r.violationCount)</h3>\n"
        guard r.violationCount > 0 else { return h + "<p>None.</p>\n" }
        for (engine, kinds) in r.violationGroups(maxExamples: maxExamples) {
            h += "<h4>\(esc(engine))</h4>\n<table class=\"violations\"><tr><th>kind</th><th>event</th><th>request</th><th>what</th></tr>\n"
            for (kind, total, group) in kinds {
                for (n, v) in group.enumerated() {
                    let request =
                        v.event > r.events
                        ? "teardown, after the last event" : map.requests[v.event].map { "<code>\(esc($0))</code>" } ?? ""
                    let cell = n == 0 ? "<td rowspan=\"\(group.count + (total > group.count ? 1 : 0))\">\(kind) (\(total))</td>" : ""
                    let link =
                        r.divergences.contains { $0.event == v.event } ? "<a href=\"#\(id)-event-\(v.event)\">\(v.event)</a>" : "\(v.event)"
                    h += "<tr>\(cell)<td class=\"num\">\(link)</td><td>\(request)</td><td>\(esc(v.violation.detail))</td></tr>\n"
                }
                if total > group.count { h += "<tr><td colspan=\"3\">… \(total - group.count) more</td></tr>\n" }
            }
            h += "</table>\n"
        }
        return h
    }

    static func sharedFailures(_ r: TraceReport, id: String, maxExamples: Int) -> String {
        let title = r.engines.count == 1 ? "Failed requests" : "Requests failing alike on every engine"
        var h = "<h3 id=\"\(id)-shared\">\(title): \(r.sharedFailureCount)</h3>\n"
        guard r.sharedFailureCount > 0 else { return h + "<p>None.</p>\n" }
        h += "<table><tr><th>event</th><th>request</th><th>ret</th><th>after mark</th></tr>\n"
        for f in r.sharedFailures.prefix(maxExamples) {
            h +=
                "<tr><td class=\"num\">\(f.event)</td><td><code>\(esc(f.request))</code></td><td>\(retName(f.ret))</td><td>\(esc(f.mark ?? ""))</td></tr>\n"
        }
        if r.sharedFailureCount > maxExamples { h += "<tr><td colspan=\"4\">… \(r.sharedFailureCount - maxExamples) more</td></tr>\n" }
        return h + "</table>\n"
    }

    static func costliest(_ r: TraceReport, id: String, maxExamples: Int) -> String {
        var h = "<h3 id=\"\(id)-costliest\">Costliest requests</h3>\n"
        let list = r.costliestShown(maxExamples)
        guard !list.isEmpty else { return h + "<p>None.</p>\n" }
        h +=
            "<div class=\"scroll\"><table><tr><th>event</th><th>request</th>" + r.engines.map { "<th>\(esc($0))</th>" }.joined() + "</tr>\n"
        for c in list {
            h += "<tr><td class=\"num\">\(c.event)</td><td><code>\(esc(c.request))</code></td>"
            h += c.estimates.map { "<td class=\"num\">\(CostModel.human($0))</td>" }.joined() + "</tr>\n"
        }
        return h + "</table></div>\n"
    }

    // MARK: - Helpers

    /// Text for HTML content and attribute values.
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters from a trace's marks and names would make the page invalid.
                if c.value < 0x20 && c != "\t" || c.value == 0x7f {
                    out += "&#xFFFD;"
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out
    }

    static func f1(_ v: Double) -> String { formatFixed(v, 1) }

    static let css = """
        body{font:14px/1.45 "Liberation Sans",Arial,Helvetica,sans-serif;color:#1f2328;background:#fff;margin:0 auto;max-width:1160px;padding:12px 24px 40px}
        h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:2px solid #d0d7de;padding-bottom:4px;margin-top:28px}
        h2 small{font-weight:normal;color:#57606a}h3{font-size:15px;margin:22px 0 6px}h4{font-size:14px;margin:14px 0 6px}h5{font-size:14px;margin:0 0 4px}
        code,td.num,.chunks td{font-family:"Liberation Mono","DejaVu Sans Mono",monospace;font-size:12.5px}
        table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #d0d7de;padding:2px 8px;text-align:left;vertical-align:top}
        th{background:#f6f8fa}td.num{text-align:right;white-space:nowrap}tr.differs td{background:#fff8e1}tr.diff td{background:#ffe8a3}
        tr.gap td{color:#57606a;font-style:italic;border-left:0;border-right:0}
        .headline{font-weight:bold;padding:8px 12px;border-radius:6px}.why{padding:6px 12px;border-left:5px solid #7b57b8;background:#f6f2fc;border-radius:6px}.found{background:#fff1f0;border-left:5px solid #d62728}
        .clean{background:#effaf1;border-left:5px solid #2e7d32}tr.found td,tr.clean td{background:none}
        .first{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:2px 12px}.first li{margin:4px 0}
        .scroll{overflow-x:auto}.side{display:flex;flex-wrap:wrap;gap:8px 32px;align-items:flex-start}.legend span{margin-right:14px}.note{color:#57606a;font-size:12.5px}
        .sw{display:inline-block;width:12px;height:12px;vertical-align:-1px;margin-right:4px;border-radius:2px}
        .mk.div{color:#d62728}.mk.vio{color:#ff7f0e}svg text.lbl{font-size:12px;fill:#1f2328}svg text.sub{font-size:10.5px;fill:#57606a}
        .since{border-left:3px solid #d0d7de;padding-left:12px;margin:10px 0}
        .divergence{border:1px solid #d0d7de;border-radius:6px;padding:4px 10px 10px;margin:8px 0}.mark{color:#57606a}
        .outcomes{display:grid;gap:10px;overflow-x:auto}.outcome{border:1px solid #d8dee4;border-radius:6px;padding:6px 8px;background:#fbfcfd}
        .outcome p{margin:2px 0}.chunks td{white-space:nowrap}.tag{display:inline-block;white-space:nowrap;padding:0 6px;border-radius:8px;font:11px "Liberation Sans",Arial,sans-serif;color:#fff;margin-right:3px}
        .tag.zero{background:#d62728}.tag.reserved{background:#b35900}.tag.mmio{background:#7b5bb6}.tag.ram{background:#4c9a5f}
        """
}

import Foundation
import TestSupport
import Testing

/// `replay --format html`: one self-contained page, checked here for its structure and exact
/// content without a browser.
@Suite struct HTMLReportTests {
    static let gpu = "traces/gpu-16g-bar.vptr"

    static func count(_ needle: String, in haystack: String) -> Int {
        haystack.components(separatedBy: needle).count - 1
    }

    /// The text of the element with `id` up to the next element of the same tag that opens an
    /// element with an id of the same family (enough to scope an `<article>` or a `<section>`).
    static func slice(_ html: String, from start: String, to end: String) -> String? {
        guard let a = html.range(of: start) else { return nil }
        let rest = html[a.lowerBound...]
        guard let b = rest.range(of: end, range: rest.index(after: rest.startIndex)..<rest.endIndex) else { return String(rest) }
        return String(rest[..<b.lowerBound])
    }

    @Test("The seed's boot: first findings first, the map by kind, the cost, the zero-page run labelled")
    func gpuReport() throws {
        let r = try CLI.run(["replay", Self.gpu, "--format", "html"])
        #expect(r.status == 1)
        #expect(r.stderr.isEmpty)
        let html = r.stdout
        #expect(HTMLShape.problems(html) == [])
        #expect(html.hasPrefix("<!DOCTYPE html>\n<html lang=\"en\">\n"))
        #expect(html.contains("<title>pinreplay: traces/gpu-16g-bar.vptr</title>"))
        #expect(html.contains("<p class=\"headline found\">found 5 divergences, 6 invariant violations</p>"))

        // Sections in the order of the text report: first findings before anything else.
        let ids = ["t1", "t1-first", "t1-map", "t1-cost", "t1-divergences", "t1-violations", "t1-shared", "t1-costliest"]
        let offsets = try ids.map { id in try #require(html.range(of: "id=\"\(id)\"")?.lowerBound, "no element with id \(id)") }
        #expect(offsets == offsets.sorted())
        #expect(
            html.contains(
                "<li><b>First divergence</b>: <a href=\"#t1-event-317\">event 317</a>, mapping: <code>map 0xc0000 0x7e8000000000 0x20000 r</code>"
            ))
        #expect(html.contains("<li><b>State first differs</b> after event 318: v4.17-rc1&#39;s locked_vm differs by -16"))

        // The map: pc.ram, pc.rom and pc.bios, three BARs; DMA maps under them; findings on the ROMs.
        #expect(Self.count("<rect class=\"vma ram\"", in: html) == 1)
        #expect(Self.count("<rect class=\"vma rom\"", in: html) == 2)
        #expect(Self.count("<rect class=\"vma bar\"", in: html) == 3)
        // The DMA band: RAM, ROM, BIOS, and the three BARs side by side as one.
        #expect(Self.count("<rect class=\"dma\"", in: html) == 4)
        // Divergences at the three ROM maps and two unmaps; violations at the maps and one unmap.
        #expect(Self.count("<g class=\"marker divergence\">", in: html) == 5)
        #expect(Self.count("<g class=\"marker violation\">", in: html) == 4)
        #expect(html.contains("<title>event 398: violation (refcount-underflow): unmap 0xfffc0000 0x40000</title>"))
        #expect(html.contains("<title>event 317: divergence (mapping): map 0xc0000 0x7e8000000000 0x20000 r</title>"))
        #expect(
            html.contains(
                "<tr><td class=\"num\">0x7e8000000000–0x7e8000020000</td><td class=\"num\">128 KiB</td><td><i class=\"sw\" style=\"background:#d9a43a\"></i>ROM</td><td>pc.rom</td><td class=\"num\">128 KiB</td><td class=\"num\">2</td></tr>"
            ))

        // Cost: one bar per engine, with the estimate.
        #expect(Self.count("<rect class=\"bar\"", in: html) == 2)
        #expect(html.contains("<title>v4.16: 3.5 s</title>"))
        #expect(html.contains("<tr class=\"differs\"><td>locked_vm final</td><td class=\"num\">0</td><td class=\"num\">-32</td></tr>"))

        // The first divergence: both chunk lists, the zero-page run labelled and highlighted.
        let event317 = try #require(Self.slice(html, from: "<article class=\"divergence\" id=\"t1-event-317\">", to: "</article>"))
        #expect(event317.contains("<h5>v4.16</h5>\n<p>ret <b>0</b>, locked_vm 170, est. 37.2 µs</p>\n<p>23 chunks, 32 pages</p>"))
        #expect(event317.contains("<h5>v4.17-rc1</h5>\n<p>ret <b>0</b>, locked_vm 170, est. 3.2 µs</p>\n<p>2 chunks, 32 pages</p>"))
        #expect(
            event317.contains(
                "<tr class=\"diff\"><td>0xca000</td><td>0x27e0</td><td class=\"num\">22</td><td><span class=\"tag zero\">zero page</span><span class=\"tag reserved\">reserved ×21</span></td></tr>"
            ))
        #expect(
            event317.contains(
                "<tr><td>0xc0000</td><td>0x140000</td><td class=\"num\">10</td><td><span class=\"tag ram\">ram ×10</span></td></tr>"))
        #expect(
            event317.contains(
                "<tr class=\"diff\"><td>0xca000</td><td>0x27e0</td><td class=\"num\">1</td><td><span class=\"tag zero\">zero page</span></td></tr>"
            ))
        #expect(event317.contains("<tr class=\"gap\"><td colspan=\"4\">… 15 more</td></tr>"))

        // Violations name the request that caused them, or the teardown.
        #expect(
            html.contains(
                "<td class=\"num\"><a href=\"#t1-event-398\">398</a></td><td><code>unmap 0xfffc0000 0x40000</code></td><td>put_pfn drops pfn 0x2800 below zero references, to -1 at worst (32 puts below zero)</td>"
            ))
        #expect(Self.count("<td>teardown, after the last event</td>", in: html) == 2)
    }

    @Test("Self-contained: no script, no resource from elsewhere, every link inside the page")
    func selfContained() throws {
        let html = try CLI.run(["replay", Self.gpu, "--format", "html"]).stdout
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(!html.contains(" src="))
        for part in html.components(separatedBy: "href=\"").dropFirst() { #expect(part.hasPrefix("#")) }
        for part in html.components(separatedBy: "url(").dropFirst() { #expect(part.hasPrefix("#")) }
    }

    @Test("Several traces: a summary table linking a section per trace; ids stay unique")
    func severalTraces() throws {
        let r = try CLI.run(["replay", "Tests/Fixtures/state-cause.txt", "Tests/Fixtures/shared-enomem.txt", "--format", "html"])
        #expect(r.status == 1)
        let html = r.stdout
        #expect(HTMLShape.problems(html) == [])
        #expect(
            html.contains(
                "<tr class=\"found\"><td><a href=\"#t1\">Tests/Fixtures/state-cause.txt</a></td><td class=\"num\">11</td><td class=\"num\">3</td><td>return-code 1, mapping 1, accounting 1</td><td>foreign-pfn 1, refcount-underflow 1, leak 2</td>"
            ))
        #expect(
            html.contains(
                "<tr class=\"clean\"><td><a href=\"#t2\">Tests/Fixtures/shared-enomem.txt</a></td><td class=\"num\">5</td><td class=\"num\">1</td><td>-</td><td>-</td>"
            ))
        let second = try #require(Self.slice(html, from: "<section class=\"trace\" id=\"t2\">", to: "</section>"))
        #expect(
            second.contains(
                "<p class=\"headline clean\">clean: the engines agree and no invariant is broken (1 request failing on every engine)</p>"))
        // The map that failed everywhere is drawn hatched over the half of the VMA it asked for.
        #expect(second.contains("<rect class=\"dma-failed\" x=\"0.0\" y=\"64\" width=\"550.0\" height=\"9\" fill=\"url(#t2-hatch)\"/>"))
        #expect(
            second.contains("<tr><td class=\"num\">5</td><td><code>map 0x0 0x400000 0x4000 rw</code></td><td>-ENOMEM</td><td></td></tr>"))
        let ids = html.components(separatedBy: " id=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        #expect(Set(ids).count == ids.count)
        // The divergence that follows the underflow sits under its cause.
        let first = try #require(Self.slice(html, from: "<section class=\"trace\" id=\"t1\">", to: "</section>"))
        let since = try #require(Self.slice(first, from: "<div class=\"since\">", to: "<h3"))
        #expect(
            since.contains(
                "<b>Since event 9</b>: v4.17-rc1&#39;s locked_vm differs by -3 and its ram page references by -3 from v4.16&#39;s; 1 request follows."
            ))
        #expect(since.contains("id=\"t1-event-11\""))
    }

    @Test("Marks and names from the trace are escaped")
    func escaping() throws {
        let dir = Paths.scratch()
        let trace = dir.appendingPathComponent("x.txt")
        try """
        vptr-text 1
        pfns ram 0x2000 64
        pool 0x2000 64
        vma 0x400000 0x408000 rw- name=<b>"guest" & 'ram'
        mark <script>alert(1)</script>
        map 0x0 0x400000 16K rw
        """.write(to: trace, atomically: true, encoding: .utf8)
        let html = try CLI.run(["replay", trace.path, "--format", "html"]).stdout
        #expect(HTMLShape.problems(html) == [])
        #expect(!html.contains("<script"))
        #expect(html.contains("<td>&lt;b&gt;&quot;guest&quot; &amp; &#39;ram&#39;</td>"))
    }

    @Test("Size is bounded: ten times the requests of a churn trace, the same page size within 1 %")
    func bounded() throws {
        let dir = Paths.scratch()
        var sizes: [Int] = []
        var articles: [Int] = []
        for requests in [2000, 20000] {
            let trace = dir.appendingPathComponent("churn\(requests).vptr").path
            let g = try CLI.run(["generate", "--profile", "viommu-churn", "--requests", "\(requests)", "-o", trace])
            #expect(g.status == 0)
            let html = try CLI.run(["replay", trace, "--engines", "all", "--format", "html"]).stdout
            #expect(HTMLShape.problems(html) == [])
            // The same examples whatever the number of requests: five per kind and cause.
            articles.append(Self.count("<article class=\"divergence\"", in: html))
            sizes.append(html.utf8.count)
        }
        #expect(articles[0] == articles[1])
        #expect(articles[1] <= 5 * 5 * 6)
        #expect(sizes[1] < sizes[0] + sizes[0] / 100, "page sizes \(sizes)")
        #expect(sizes[1] < 400_000, "page sizes \(sizes)")
    }

    @Test("The same input gives the same bytes; -o writes what standard output shows; html takes no --summary")
    func deterministicAndOutput() throws {
        let dir = Paths.scratch()
        let file = dir.appendingPathComponent("report.html").path
        let a = try CLI.run(["replay", Self.gpu, "--format", "html"])
        let b = try CLI.run(["replay", Self.gpu, "--format", "html", "-o", file, "--jobs", "1"])
        #expect(b.status == 1)
        #expect(b.stdout.isEmpty)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == a.stdout)
        #expect(try CLI.run(["replay", Self.gpu, "--format", "html"]).stdout == a.stdout)
        let s = try CLI.run(["replay", Self.gpu, "--format", "html", "--summary"])
        #expect(s.status == 2)
        #expect(s.stderr.contains("--summary takes --format text or json"))
    }
}

/// A structural check of the page without a browser: every element closed in order, nothing
/// closed that was not open.
enum HTMLShape {
    static let void: Set<String> = ["meta", "br", "link", "img", "hr", "input"]

    static func problems(_ html: String) -> [String] {
        var open: [String] = []
        var problems: [String] = []
        var rest = html[...]
        while let lt = rest.firstIndex(of: "<") {
            guard let gt = rest[lt...].firstIndex(of: ">") else {
                problems.append("unterminated tag")
                break
            }
            let tag = rest[rest.index(after: lt)..<gt]
            rest = rest[rest.index(after: gt)...]
            if tag.hasPrefix("!") { continue }
            let name = tag.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber }.lowercased()
            if tag.hasPrefix("/") {
                if open.last == name { open.removeLast() } else { problems.append("</\(name)> closes <\(open.last ?? "nothing")>") }
            } else if !tag.hasSuffix("/") && !void.contains(name) {
                open.append(name)
            }
            if name == "style", let end = rest.range(of: "</style>") {
                // CSS holds no tags; skip it whole.
                rest = rest[end.lowerBound...]
            }
        }
        if !open.isEmpty { problems.append("left open: \(open)") }
        return problems
    }
}

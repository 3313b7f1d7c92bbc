import Foundation
import TestSupport
import Testing

/// The HTML report as a person sees it: headless Chromium renders the seed's boot to a PNG,
/// which must show the map's colours, and its DOM must hold the report's sections.
/// `tools/test.sh` installs Chromium and sets PINREPLAY_BROWSER_TESTS=required, so CI cannot
/// skip this; a plain `swift test` without Chromium shows it as skipped.
@Suite(.enabled(if: Browser.chromium != nil || Browser.required, "Chromium is not installed (tools/ensure-deps.sh --test installs it)"))
struct HTMLBrowserTests {
    static func report(in dir: URL) throws -> URL {
        let file = dir.appendingPathComponent("gpu-16g-bar.html")
        let r = try CLI.run(["replay", "traces/gpu-16g-bar.vptr", "--format", "html", "-o", file.path])
        #expect(r.status == 1)
        return file
    }

    @Test("The rendered page is not blank: the map's kinds, the DMA band and the findings show in their colours")
    func screenshot() throws {
        let dir = Paths.scratch()
        let page = try Self.report(in: dir)
        let png = dir.appendingPathComponent("report.png")
        let shot = try Browser.run(["--window-size=1280,2200", "--screenshot=\(png.path)", page.absoluteString], in: dir)
        #expect(shot.status == 0)
        let stats = Process()
        stats.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        stats.arguments = [
            "python3", Paths.root.appendingPathComponent("tools/png-stats.py").path, png.path,
            "4c9a5f", "d9a43a", "7b5bb6", "2b6cb0", "d62728", "ff7f0e",
        ]
        let out = Pipe()
        stats.standardOutput = out
        try stats.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        stats.waitUntilExit()
        #expect(stats.terminationStatus == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["width"] as? Int == 1280)
        #expect(json["height"] as? Int == 2200)
        let nonwhite = try #require(json["nonwhite"] as? Double)
        #expect(nonwhite > 0.15, "only \(nonwhite) of the page is not white")
        let counts = try #require(json["counts"] as? [String: Int])
        // RAM, ROM, BAR boxes 36 px high and the DMA band; the divergence and violation marks.
        for (colour, what, least) in [
            ("4c9a5f", "RAM", 5000), ("d9a43a", "ROM", 3000), ("7b5bb6", "BAR", 10000), ("2b6cb0", "DMA band", 5000),
            ("d62728", "divergence marks and zero-page tags", 500), ("ff7f0e", "violation marks", 50),
        ] {
            #expect((counts[colour] ?? 0) >= least, "\(what) (#\(colour)): \(counts[colour] ?? 0) pixels")
        }
    }

    @Test("The DOM Chromium builds holds every section, the headline and the labelled zero-page run")
    func dom() throws {
        let dir = Paths.scratch()
        let page = try Self.report(in: dir)
        let r = try Browser.run(["--dump-dom", page.absoluteString], in: dir)
        #expect(r.status == 0)
        for id in ["t1-first", "t1-map", "t1-cost", "t1-divergences", "t1-violations", "t1-shared", "t1-costliest", "t1-event-317"] {
            #expect(r.stdout.contains("id=\"\(id)\""), "no element with id \(id)")
        }
        #expect(r.stdout.contains("<p class=\"headline found\">found 5 divergences, 6 invariant violations</p>"))
        #expect(r.stdout.contains("<span class=\"tag zero\">zero page</span><span class=\"tag reserved\">reserved ×21</span>"))
        #expect(r.stdout.components(separatedBy: "<rect class=\"vma ").count - 1 == 6)
    }
}

/// Headless Chromium, found on PATH.
enum Browser {
    static let required = ProcessInfo.processInfo.environment["PINREPLAY_BROWSER_TESTS"] == "required"

    static let chromium: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            for name in ["chromium", "chromium-browser"] {
                let candidate = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }()

    /// Runs Chromium headless with its own profile directory (tests run in parallel) and
    /// returns its standard output.
    static func run(_ args: [String], in dir: URL) throws -> (status: Int32, stdout: String) {
        let chromium = try #require(chromium, "Chromium is not installed (tools/ensure-deps.sh --test installs it)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium)
        p.arguments =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--user-data-dir=\(dir.appendingPathComponent("profile").path)",
            ] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

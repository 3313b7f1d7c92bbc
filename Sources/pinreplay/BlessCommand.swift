import ArgumentParser
import Foundation
import Replay
import TraceFormat

/// `pinreplay bless [TRACE...]`: rewrites golden results on purpose, saying what changed.
struct BlessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bless",
        abstract: "Rewrite the expected results of golden traces, printing what changed.",
        discussion: """
            Bless only after checking that a change in an engine or the world is intended: each \
            changed trace is listed with its first differing line. A result with fewer \
            divergences or violations than before is refused unless --accept-fewer is given.
            """)

    @Argument(help: "Traces to bless (default: every .txt and .vptr under traces/).") var traces: [String] = []
    @Flag(help: "Accept results with fewer divergences or violations than the expected ones.") var acceptFewer = false

    func run() throws {
        var paths = traces
        if paths.isEmpty {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "traces")) ?? []
            paths = names.filter { $0.hasSuffix(".txt") || $0.hasSuffix(".vptr") }.sorted().map { "traces/" + $0 }
            guard !paths.isEmpty else { throw UsageError("no traces under ./traces (run from the repository root)") }
        }
        var changed = 0
        for path in paths {
            let got = try Golden.render(trace: path)
            let base = Golden.expectedBase(for: path)
            let old = Golden.Results.suffixes.map { try? String(contentsOfFile: base + $0, encoding: .utf8) }
            if old == got.files {
                print("\(path): unchanged")
                continue
            }
            if let oldJSON = old[0] {
                let (od, ov) = Golden.counts(oldJSON)
                let (nd, nv) = Golden.counts(got.json)
                if (nd < od || nv < ov) && !acceptFewer {
                    throw UsageError("\(path): divergences \(od) → \(nd), violations \(ov) → \(nv): fewer than expected; check, then bless with --accept-fewer")
                }
                let first = zip(old, got.files).lazy.compactMap { o, n in Golden.difference(expected: o ?? "", got: n) }.first ?? ""
                print("\(path): changed: divergences \(od) → \(nd), violations \(ov) → \(nv); first difference at " + first)
            } else {
                print("\(path): new expected results")
            }
            for (suffix, text) in zip(Golden.Results.suffixes, got.files) {
                let out = try AtomicOutput(path: base + suffix)
                try out.write(Array(text.utf8))
                try out.commit()
            }
            changed += 1
        }
        print("\(changed) of \(paths.count) expected results written")
    }
}

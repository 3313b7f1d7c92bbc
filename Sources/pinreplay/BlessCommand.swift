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

    @Flag(help: "Only check: print every difference and exit 1 when any expected result would change.") var check = false

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
            let old = Golden.stored(trace: path)
            let diffs = Golden.differences(expected: old, got: got)
            if diffs.isEmpty {
                if !check { print("\(path): unchanged") }
                continue
            }
            changed += 1
            if check {
                for d in diffs { print("\(path): \(d)") }
                for line in Golden.changedLines(expected: old, got: got) { print("\(path): \(line)") }
                continue
            }
            if let old {
                let (od, ov) = Golden.counts(old)
                let (nd, nv) = Golden.counts(got)
                if (nd < od || nv < ov) && !acceptFewer {
                    throw UsageError(
                        "\(path): divergences \(od) → \(nd), violations \(ov) → \(nv): fewer than expected; check, then bless with --accept-fewer"
                    )
                }
                print("\(path): changed: divergences \(od) → \(nd), violations \(ov) → \(nv); " + diffs.joined(separator: "; "))
            } else {
                print("\(path): new expected results")
            }
            // The per-engine results and the report change together, or not at all.
            let dir = Golden.expectedDir(for: path)
            try FileManager.default.createDirectory(
                atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try replaceDirectory(dir, files: got.files.map { ($0.name, Array($0.text.utf8)) })
        }
        if check {
            print("\(changed) of \(paths.count) traces would change")
            if changed > 0 { throw ExitCode(1) }
        } else {
            print("\(changed) of \(paths.count) expected results written")
        }
    }
}

import ArgumentParser
import Foundation
import Replay

/// `pinreplay diff A.json B.json`.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two JSON reports (replay --format json) trace by trace and request by request.",
        discussion: "Exit 0: they agree; 1: they differ, one line per difference; 2: bad input.")

    @Argument(help: "The first report.") var a: String
    @Argument(help: "The second report.") var b: String

    func run() throws {
        func read(_ path: String) throws -> Data {
            guard let d = FileManager.default.contents(atPath: path) else { throw UsageError("\(path): cannot read") }
            return d
        }
        let lines = try ReportDiff.compare(try read(a), try read(b), names: (a, b))
        for l in lines { print(l) }
        if !lines.isEmpty { throw ExitCode(1) }
    }
}

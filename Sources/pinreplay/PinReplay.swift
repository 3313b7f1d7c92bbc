import ArgumentParser
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// The root command: subcommands are the table of contents.
struct PinReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pinreplay",
        abstract: "Replay VFIO DMA-map request streams through kernel versions of vfio_pin_pages_remote().",
        discussion: """
            Exit codes: 0 ran, no divergence and no invariant violation; 1 ran and found a \
            divergence or violation; 2 bad usage or bad input.
            """,
        version: "0.1.0",
        subcommands: [
            ReplayCommand.self, GenerateCommand.self, ConvertCommand.self, DumpCommand.self,
            StatCommand.self, VerifyCommand.self, EnginesCommand.self, BlessCommand.self, BenchCommand.self, RecordCommand.self,
            ReduceCommand.self, FuzzCommand.self, DiffCommand.self, EngineWorkerCommand.self,
        ]
    )
}

/// Writes one line to standard error.
func printError(_ line: String, newline: Bool = true) {
    var bytes = Array(line.utf8)
    if newline && bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

@main
enum Main {
    static func main() {
        do {
            var command = try PinReplay.parseAsRoot()
            do {
                try command.run()
            } catch let code as ExitCode {
                checkStandardOutput()
                exit(code.rawValue)
            }
            checkStandardOutput()
        } catch let error as TraceError {
            printError("pinreplay: \(error)")
            exit(2)
        } catch let error as UsageError {
            printError("pinreplay: \(error.message)")
            exit(2)
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch {
            // Help and version requests exit 0 with their text; every other parse error is bad
            // usage: exit 2 with one line.
            if PinReplay.exitCode(for: error) == .success {
                print(PinReplay.fullMessage(for: error))
                exit(0)
            }
            let message = PinReplay.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError("pinreplay: \(message) (see 'pinreplay help')")
            exit(2)
        }
    }
}

/// A command that wrote its result to standard output has not succeeded if the write failed
/// (a full disk, `> /dev/full`, a closed pipe): exit 2 with one line.
func checkStandardOutput() {
    if let failure = standardOutputFailure() {
        printError("pinreplay: \(failure)")
        exit(2)
    }
}

/// A bad flag or argument combination found after parsing: exit 2, one line.
struct UsageError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

import ArgumentParser
import TraceFormat

/// `pinreplay dump TRACE`: the canonical text form on standard output.
struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump", abstract: "Print a trace (either form, or - for stdin) in canonical text form.")

    @Argument(help: "Trace file, text or binary; - reads standard input.")
    var trace: String

    func run() throws {
        let reader = try TraceReader(path: trace)
        _ = try reader.verify()
        let out = try TraceWriter(path: "-", form: .text)
        while let s = try reader.next() { try out.write(s) }
        try out.finish()
    }
}

/// `pinreplay convert IN OUT`: text to binary or back.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a trace between the text and binary forms.",
        discussion: """
            The input form is detected from its content. The output form follows OUT's extension \
            (.txt text, .vptr binary) or, failing that, is the other form. OUT is written \
            atomically; - is standard output.
            """)

    @Argument(help: "Input trace; - reads standard input.") var input: String
    @Argument(help: "Output trace; - writes standard output.") var output: String
    @Option(help: "Force the output form.") var to: TraceForm?

    func run() throws {
        let reader = try TraceReader(path: input)
        let form: TraceForm
        if let to {
            form = to
        } else {
            form = TraceForm.fromExtension(output) ?? (reader.form == .text ? .binary : .text)
        }
        _ = try reader.verify()
        let writer = try TraceWriter(path: output, form: form)
        while let s = try reader.next() { try writer.write(s) }
        try writer.finish()
        if reader.skippedRecords > 0 {
            printError(
                "pinreplay: \(reader.file): \(reader.skippedRecords) records of types this version does not know were left out of \(writer.file)"
            )
        }
    }
}

/// `pinreplay stat TRACE`.
struct StatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat", abstract: "Count a trace's statements, mapped bytes, VMAs and pages; show its compression.")

    @Argument(help: "Trace file, text or binary; - reads standard input.") var trace: String

    func run() throws {
        let reader = try TraceReader(path: trace)
        let stats = try TraceStats(reader: reader)
        print(stats.render(file: reader.file), terminator: "")
    }
}

/// `pinreplay verify TRACE`.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check a trace completely: structure, checksums, trailer, every statement.")

    @Argument(help: "Trace files, text or binary; - reads standard input.") var traces: [String]

    func run() throws {
        for path in traces {
            let reader = try TraceReader(path: path)
            let n = try reader.verify()
            print("\(reader.file): ok, \(reader.form.rawValue), \(n) records")
        }
    }
}

extension TraceForm: ExpressibleByArgument {}

import Foundation

/// Runs the built `pinreplay` executable.
public enum CLI {
    /// The executable beside the test bundle (`swift build --build-tests` builds both).
    public static var executable: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("pinreplay")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return Paths.root.appendingPathComponent(".build/debug/pinreplay")
    }

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `pinreplay args...` in the repository root, feeding `stdin` if given; standard
    /// output goes to `stdoutFile` instead of a pipe when given (`/dev/full`). `binary` runs
    /// another copy of the tool; `environment` adds variables.
    public static func run(
        _ args: [String], stdin: Data? = nil, stdoutFile: String? = nil, binary: URL? = nil, environment: [String: String] = [:]
    ) throws -> Result {
        let p = Process()
        p.executableURL = binary ?? executable
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.arguments = args
        p.currentDirectoryURL = Paths.root
        let out = Pipe()
        let err = Pipe()
        if let stdoutFile, let handle = FileHandle(forWritingAtPath: stdoutFile) {
            p.standardOutput = handle
            try out.fileHandleForWriting.close()
        } else {
            p.standardOutput = out
        }
        p.standardError = err
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        // Read both pipes to the end before waiting, so a large output cannot block the child.
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }
}

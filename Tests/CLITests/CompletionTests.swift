import Foundation
import TestSupport
import Testing

/// Shell completion as a shell runs it: bash sources the generated script and calls its
/// completion function on partial command lines.
@Suite struct CompletionTests {
    /// COMPREPLY for each partial command line (words; the last is the word being completed).
    static func complete(_ lines: [[String]]) throws -> [String] {
        let script = try CLI.run(["--generate-completion-script", "bash"])
        #expect(script.status == 0)
        let dir = Paths.scratch()
        let file = dir.appendingPathComponent("pinreplay.bash")
        try script.stdout.write(to: file, atomically: true, encoding: .utf8)
        var body = "source '\(file.path)'\n"
        body += "f=$(complete -p pinreplay | sed 's/.*-F \\([^ ]*\\).*/\\1/')\n"
        for words in lines {
            let quoted = words.map { "'\($0)'" }.joined(separator: " ")
            body +=
                "COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); COMP_LINE=\"${COMP_WORDS[*]}\"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()\n"
            body += "$f pinreplay \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"; echo \"${COMPREPLY[*]}\"\n"
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", body]
        p.currentDirectoryURL = Paths.root
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = CLI.executable.deletingLastPathComponent().path + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test("bash completes option values, profiles and trace files")
    func bash() throws {
        let replies = try Self.complete([
            ["pinreplay", "replay", "--format", ""],
            ["pinreplay", "generate", "--profile", ""],
            ["pinreplay", "replay", "traces/gpu-16g-b"],
            ["pinreplay", "convert", "--to", ""],
        ])
        #expect(
            replies == [
                "text json jsonl html",
                "gpu-16g-bar nic-sriov-4vf viommu-churn hugetlb-1g-64g tight-memlock intx-no-kvm",
                "traces/gpu-16g-bar.vptr",
                "text binary",
            ])
    }
}

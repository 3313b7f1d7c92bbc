import Foundation

/// Where the repository's files are, found from this source file's path.
public enum Paths {
    /// The repository root.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `Tests/Fixtures`.
    public static let fixtures = root.appendingPathComponent("Tests/Fixtures")
    /// `traces/`.
    public static let traces = root.appendingPathComponent("traces")

    /// Text traces (`*.txt`, not `*.canonical.txt`, not under `bad/` nor `qemu/`, which holds
    /// QEMU monitor samples) under a directory, recursively, sorted.
    public static func textTraces(under dir: URL) -> [URL] {
        let files =
            FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL } ?? []
        return files.filter {
            $0.pathExtension == "txt" && !$0.lastPathComponent.hasSuffix(".canonical.txt") && !$0.path.contains("/bad/")
                && !$0.path.contains("/qemu/")
        }
        .sorted { $0.path < $1.path }
    }

    /// Every trace under `traces/` (text and binary), sorted.
    public static func goldenTraces() -> [URL] {
        let files = (try? FileManager.default.contentsOfDirectory(at: traces, includingPropertiesForKeys: nil)) ?? []
        return files.filter { ["txt", "vptr"].contains($0.pathExtension) }.sorted { $0.path < $1.path }
    }

    /// A fresh scratch directory.
    public static func scratch(_ name: String = #function) -> URL {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("pinreplay-tests-\(getpid())-\(safe)-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

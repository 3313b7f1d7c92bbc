import Foundation
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// A QMP connection over a unix socket, enough to run human monitor commands.
public final class QMPClient {
    private let fd: Int32
    private var buffer = Data()
    /// The QMP socket's path.
    public let path: String

    /// Connects, reads the greeting and enters command mode.
    public init(socket path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RecordError("\(path): cannot create a socket") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw RecordError("\(path): socket path too long")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw RecordError("\(path): cannot connect: \(String(cString: strerror(errno)))")
        }
        _ = try readMessage()  // greeting
        _ = try execute("qmp_capabilities")
    }

    deinit { close(fd) }

    /// Runs a human monitor command and returns its text output.
    public func hmp(_ command: String) throws -> String {
        let reply = try execute("human-monitor-command", arguments: ["command-line": command])
        guard let text = reply as? String else { throw RecordError("\(path): '\(command)' gave no text") }
        return text
    }

    private func execute(_ command: String, arguments: [String: Any] = [:]) throws -> Any {
        var msg: [String: Any] = ["execute": command]
        if !arguments.isEmpty { msg["arguments"] = arguments }
        var data = try JSONSerialization.data(withJSONObject: msg)
        data.append(UInt8(ascii: "\n"))
        do { try writeAll(fd, ArraySlice(data), name: path) } catch { throw RecordError(error.description) }
        while true {
            let m = try readMessage()
            if let r = m["return"] { return r }
            if let e = m["error"] as? [String: Any] {
                throw RecordError("\(path): \(command): \(e["desc"] as? String ?? "error")")
            }
            // Asynchronous events ("event") are skipped.
        }
    }

    /// One JSON object per line.
    private func readMessage() throws -> [String: Any] {
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<nl]
                buffer.removeSubrange(buffer.startIndex...nl)
                if line.allSatisfy({ $0 == 13 || $0 == 32 }) { continue }
                // A human monitor greets with "QEMU 7.2.0 monitor - type 'help' ...", not JSON.
                guard let obj = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                    let text = String(decoding: line.prefix(60), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    throw RecordError("\(path): not a QMP socket (it said '\(text)'); start QEMU with -qmp unix:PATH,server=on,wait=off")
                }
                return obj
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { readRetrying(fd, $0.baseAddress, $0.count) }
            guard n >= 0 else { throw RecordError("\(path): read failed: \(String(cString: strerror(errno)))") }
            guard n > 0 else { throw RecordError("\(path): QEMU closed the connection") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}

/// A failure talking to QEMU or reading a capture.
public struct RecordError: Error, CustomStringConvertible {
    public var description: String
    /// An error saying `d`.
    public init(_ d: String) { description = d }
}

extension QMPClient {
    /// `gpa2hva`: the host address QEMU maps guest address `gpa` at, nil where it maps none.
    public func gpa2hva(_ gpa: UInt64) throws -> UInt64? {
        parseGpa2hva(try hmp("gpa2hva " + hex(gpa)))
    }
}

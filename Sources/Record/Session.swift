import Foundation
import TraceFormat

#if canImport(Glibc)
    import Glibc
#endif

/// What a recording is made of: a maps snapshot (with its pagemap) and, optionally, the map
/// requests of a QEMU flat view.
public struct RecordSources {
    public var mapsText: String
    public var mapsName: String
    public var pagemapFD: Int32?
    public var memlock: UInt64??
    /// `info mtree -f` text and how to find a section's host address.
    public var flatView: (text: String, source: String, hva: (UInt64) throws -> UInt64?)?

    public init(mapsText: String, mapsName: String) {
        self.mapsText = mapsText
        self.mapsName = mapsName
    }
}

/// Builds the trace statements of a recording.
public func record(_ src: RecordSources, recorder: inout Recorder) throws -> [Statement] {
    let entries = try parseMaps(src.mapsText, file: src.mapsName)
    var out = recorder.snapshot(maps: entries, pagemapFD: src.pagemapFD, memlock: src.memlock ?? nil)
    if let fv = src.flatView {
        let view = try parseFlatView(fv.text, source: fv.source)
        var failure: Error?
        let maps = try listenerMaps(view) { gpa throws(TraceError) in
            do { return try fv.hva(gpa) } catch {
                failure = error
                return nil
            }
        }
        if let failure { throw failure }
        // Every map must land in a recorded VMA: a map outside one means the sources disagree.
        for m in maps {
            guard case let .map(iova, vaddr, _, _) = m else { continue }
            guard entries.contains(where: { $0.start <= vaddr && vaddr < $0.end }) else {
                throw TraceError(file: fv.source, .file, "section at guest 0x\(String(iova, radix: 16)) has host address 0x\(String(vaddr, radix: 16)), outside every mapping of \(src.mapsName)")
            }
        }
        out.append(.mark("realize: the vfio listener maps QEMU's flat view (RAM and ROM sections, ROM read-only)"))
        out += maps
    }
    return out
}

/// Records a running QEMU: its flat view and section addresses over QMP, its memory map and
/// pagemap from /proc.
public func recordQEMU(socket: String, pid: Int32, recorder: inout Recorder) throws -> [Statement] {
    let qmp = try QMPClient(socket: socket)
    let mtree = try qmp.hmp("info mtree -f")
    var src = RecordSources(mapsText: try readProcText("/proc/\(pid)/maps"), mapsName: "/proc/\(pid)/maps")
    let fd = open("/proc/\(pid)/pagemap", O_RDONLY | O_CLOEXEC)
    src.pagemapFD = fd >= 0 ? fd : nil
    defer { if fd >= 0 { close(fd) } }
    src.memlock = (try? readProcText("/proc/\(pid)/limits")).flatMap(memlockLimit)
    src.flatView = (mtree, "\(socket) (info mtree -f)", { gpa in parseGpa2hva(try qmp.hmp("gpa2hva 0x" + String(gpa, radix: 16))) })
    return try record(src, recorder: &recorder)
}

/// A whole text file, /proc files included (they report a size of 0).
public func readProcText(_ path: String) throws -> String {
    guard let h = FileHandle(forReadingAtPath: path) else {
        throw TraceError(file: path, .file, "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { try? h.close() }
    return String(decoding: (try h.readToEnd()) ?? Data(), as: UTF8.self)
}

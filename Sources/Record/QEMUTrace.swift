import TraceFormat

/// The requests a QEMU trace log (the `log` backend: `PID@SEC.USEC:event args`) shows the
/// VFIO listener making, in order, from the log as it was pasted (`PastedLog`: syslog
/// prefixes, quoting, wrapped lines). Events of other names are skipped; a vfio request that
/// does not parse is an error naming the file and line.
///
/// The formats are QEMU's (hw/vfio/trace-events, checked against QEMU 7.2):
/// `vfio_listener_region_add_ram region_add [ram] 0xSTART - 0xLAST [VADDR]`,
/// `vfio_listener_region_del region_del 0xSTART - 0xLAST`,
/// `vfio_iommu_map_notify iommu map|unmap @ 0xSTART - 0xLAST`,
/// `vfio_region_mmap Region NAME [0xOFFSET - 0xEND]`.
public struct QEMUTraceLog {
    /// The statements made so far, in order.
    public var statements: [Statement] = []
    /// The log line each statement came from.
    public var lines: [Int] = []
    /// vIOMMU maps whose host address the trace does not carry.
    public var unplaceable = 0

    /// Parses `text`; `readOnly` says whether the section at a guest address is read-only (ROM),
    /// which the trace does not tell.
    public init(_ text: String, file: String, readOnly: (UInt64) -> Bool) throws(TraceError) {
        var lastTime: (sec: UInt64, usec: UInt64) = (0, 0)
        for record in PastedLog.records(text, prefixes: ["vfio_", "iommufd_backend_"]) {
            let words = record.event.split(separator: " ")
            guard let event = words.first else { continue }
            let raw = record.text
            let i = record.line - 1
            func bad(_ what: String) -> TraceError {
                TraceError(file: file, .line(i + 1), .syntax, "\(event): \(what): '\(raw.prefix(100))'")
            }
            if let time = record.time {
                guard time >= lastTime else { throw bad("event out of order (its time is before the line above)") }
                lastTime = time
            }
            let before = statements.count
            defer { lines += Array(repeating: i + 1, count: statements.count - before) }
            func hexAt(_ k: Int) throws(TraceError) -> UInt64 {
                guard k < words.count else { throw bad("missing field") }
                let w = words[k].trimmingCharacters(in: "[]")
                guard w.hasPrefix("0x"), let v = UInt64(w.dropFirst(2), radix: 16) else { throw bad("bad number '\(words[k])'") }
                return v
            }
            switch event {
            case "vfio_listener_region_add_ram":
                // region_add [ram] 0xSTART - 0xLAST [VADDR]
                let start = try hexAt(3)
                let last = try hexAt(5)
                let vaddr = try hexAt(6)
                guard last >= start else { throw bad("range ends before it starts") }
                statements.append(
                    .map(iova: start, vaddr: vaddr, size: last &- start &+ 1, access: readOnly(start) ? .read : [.read, .write]))
            case "vfio_listener_region_del":
                let start = try hexAt(2)
                let last = try hexAt(4)
                guard last >= start else { throw bad("range ends before it starts") }
                statements.append(.unmap(iova: start, size: last &- start &+ 1))
            case "vfio_iommu_map_notify":
                // iommu map|unmap @ 0xSTART - 0xLAST
                guard words.count > 2 else { throw bad("missing operation") }
                let start = try hexAt(4)
                let last = try hexAt(6)
                guard last >= start else { throw bad("range ends before it starts") }
                if words[2] == "unmap" {
                    statements.append(.unmap(iova: start, size: last &- start &+ 1))
                } else if words[2] == "map" {
                    unplaceable += 1
                    statements.append(
                        .mark("vIOMMU map of iova \(hex(start))-\(hex(last)) left out: the trace does not carry its host address"))
                } else {
                    throw bad("operation '\(words[2])'")
                }
            case "vfio_region_mmap":
                statements.append(.mark("QEMU mmaps \(words.dropFirst().joined(separator: " "))"))
            case "iommufd_backend_map_dma":
                // QEMU's -object iommufd backend (backends/trace-events):
                // " iommufd=%d ioas=%d iova=0x.. size=0x.. addr=%p readonly=%d (%d)"
                let f = try keyed(words, bad)
                statements.append(
                    .map(
                        iova: try f.hex("iova"), vaddr: try f.hex("addr"), size: try f.hex("size"),
                        access: f["readonly"] == "1" ? .read : [.read, .write]))
            case "iommufd_backend_unmap_dma", "iommufd_backend_unmap_dma_non_exist":
                let f = try keyed(words, bad)
                statements.append(.unmap(iova: try f.hex("iova"), size: try f.hex("size")))
            case "iommufd_backend_map_file_dma":
                statements.append(.mark("IOMMU_IOAS_MAP_FILE (memfd) left out: \(words.dropFirst().joined(separator: " "))"))
            case "vfio_dma_unmap_overflow_workaround":
                statements.append(.mark("QEMU retries an unmap one page short of 2^64"))
            default:
                continue
            }
        }
    }
}

/// The `key=value` words of a trace event, with the error to throw for a missing one.
struct KeyedFields {
    var fields: [Substring: Substring] = [:]
    let bad: (String) -> TraceError
    subscript(_ k: Substring) -> Substring? { fields[k] }
    func hex(_ k: Substring) throws(TraceError) -> UInt64 {
        guard let v = fields[k], v.hasPrefix("0x"), let n = UInt64(v.dropFirst(2), radix: 16) else {
            throw bad(fields[k] == nil ? "missing field \(k)=" : "bad number '\(k)=\(fields[k] ?? "")'")
        }
        return n
    }
}

func keyed(_ words: [Substring], _ bad: @escaping (String) -> TraceError) throws(TraceError) -> KeyedFields {
    var f = KeyedFields(bad: bad)
    for w in words.dropFirst() {
        let kv = w.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { f.fields[kv[0]] = kv[1] }
    }
    return f
}

extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return s
    }
}

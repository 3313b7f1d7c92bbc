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
    /// The events that are requests: one that cannot be read is an error.
    static let requestEvents: Set<String> = [
        "vfio_listener_region_add_ram", "vfio_listener_region_del", "vfio_iommu_map_notify", "iommufd_backend_map_dma",
        "iommufd_backend_unmap_dma", "iommufd_backend_unmap_dma_non_exist",
    ]
    /// The BAR mmaps QEMU reports (`vfio_region_mmap`), in order.
    public var barMmaps: [BARMmap] = []
    /// The last value the guest wrote to each BAR register (config offsets 0x10-0x24) of each
    /// device (`vfio_pci_write_config`), sizing probes (all ones) left out.
    public var barWrites: [String: [Int: UInt64]] = [:]

    /// The guest address of `bdf`'s BAR `bar` as its config writes left it, if they say: the
    /// low dword, and the next register as the high dword when the log mmaps no BAR there (a
    /// 64-bit BAR's upper half).
    public func guestBARAddress(_ bdf: String, _ bar: Int) -> UInt64? {
        guard let regs = barWrites[bdf], let low = regs[0x10 + 4 * bar] else { return nil }
        var address = low & ~0xF
        if let high = regs[0x14 + 4 * bar], !barMmaps.contains(where: { $0.bdf == bdf && $0.bar == bar + 1 }) {
            address |= high << 32
        }
        return address == 0 ? nil : address
    }

    /// One `vfio_region_mmap Region BDF BAR N mmaps[i] [0xOFFSET - 0xLAST]` line: QEMU mmapped
    /// bytes OFFSET..LAST of the device's BAR N (one VMA).
    public struct BARMmap: Equatable, Sendable {
        /// The host device, as the log spells it (`0000:84:00.0`).
        public var bdf: String
        /// The BAR index.
        public var bar: Int
        /// Where the mmap starts in the BAR, in bytes.
        public var offset: UInt64
        /// Its length in bytes.
        public var size: UInt64
    }

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
            if words.count == 1 && event != "vfio_dma_unmap_overflow_workaround" {
                // A bare event name (a list of the events enabled) mentions it; it is no record.
                if Self.requestEvents.contains(String(event)) {
                    statements.append(.mark("line \(i + 1): '\(event)' without arguments read as a mention, not a request"))
                }
                continue
            }
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
                // Region BDF BAR N mmaps[i] [0xOFFSET - 0xLAST]; not a request, so a line that
                // does not read is named in a mark and skipped.
                if words.count >= 9, words[1] == "Region", words[3] == "BAR", let bar = Int(words[4]),
                    let offset = try? hexAt(6), let last = try? hexAt(8), last >= offset
                {
                    barMmaps.append(BARMmap(bdf: String(words[2]), bar: bar, offset: offset, size: last &- offset &+ 1))
                    statements.append(.mark("QEMU mmaps \(words.dropFirst().joined(separator: " "))"))
                } else {
                    statements.append(.mark("line \(i + 1): vfio_region_mmap not read, skipped: \(raw.prefix(100))"))
                }
            case "vfio_pci_write_config":
                // (BDF, @0xOFFSET, 0xVALUE, len=0xN): only dword writes of BAR registers matter.
                let args = record.event.drop { $0 != "(" }.dropFirst().prefix { $0 != ")" }.split(separator: ",")
                    .map { $0.trimmingCharacters(in: " ") }
                guard args.count == 4, args[1].hasPrefix("@0x"), let offset = Int(args[1].dropFirst(3), radix: 16),
                    args[2].hasPrefix("0x"), let value = UInt64(args[2].dropFirst(2), radix: 16), args[3] == "len=0x4"
                else { continue }
                if (0x10...0x24).contains(offset) && value != 0xFFFF_FFFF { barWrites[String(args[0]), default: [:]][offset] = value }
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
                // QEMU's own report of a failed map or unmap, pasted into so many bug reports:
                // `vfio_dma_map(CONTAINER, IOVA, SIZE, VADDR) = RET (MESSAGE)`.
                guard event.hasPrefix("vfio_dma_map(") || event.hasPrefix("vfio_dma_unmap(") else { continue }
                let text = record.event
                guard let open = text.firstIndex(of: "("), let close = text.firstIndex(of: ")"), open < close,
                    let eq = text[close...].firstIndex(of: "=")
                else { throw bad("not 'vfio_dma_map(container, iova, size, vaddr) = ret'") }
                var args: [UInt64] = []
                for a in text[text.index(after: open)..<close].split(separator: ",") {
                    let w = a.trimmingCharacters(in: " ")
                    guard w.hasPrefix("0x"), let v = UInt64(w.dropFirst(2), radix: 16) else { throw bad("bad number '\(w)'") }
                    args.append(v)
                }
                let retWord = text[text.index(after: eq)...].split(separator: " ").first ?? ""
                guard let ret = Int(retWord) else { throw bad("no return code after '='") }
                let isMap = event.hasPrefix("vfio_dma_map(")
                guard args.count == (isMap ? 4 : 3) else { throw bad("\(args.count) arguments") }
                let request: Statement =
                    isMap
                    ? .map(iova: args[1], vaddr: args[3], size: args[2], access: readOnly(args[1]) ? .read : [.read, .write])
                    : .unmap(iova: args[1], size: args[2])
                // The report of a request the listener's line above already made is its result,
                // not another request.
                if statements.last != request { statements.append(request) }
                statements.append(.mark("the host returned \(ret)"))
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

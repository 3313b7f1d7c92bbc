import TraceFormat

/// The requests `tools/capture/vfio-dma.bt` printed (type1's MAP/UNMAP and iommufd's
/// IOAS_MAP/IOAS_UNMAP), in order, each followed by a mark with the
/// return code the host saw. Other lines (bpftrace's banner, maps printed at exit) are skipped;
/// a MAP or UNMAP line that does not parse is an error naming the file and line.
public func parseBPFTrace(_ text: String, file: String) throws(TraceError) -> [(statement: Statement, line: Int)] {
    var out: [(statement: Statement, line: Int)] = []
    for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
        let words = raw.split(separator: " ")
        guard let kind = words.first, ["MAP", "UNMAP", "IOAS_MAP", "IOAS_UNMAP"].contains(kind) else { continue }
        var fields: [Substring: Substring] = [:]
        for w in words.dropFirst() {
            let kv = w.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[kv[0]] = kv[1] }
        }
        func bad(_ what: String) -> TraceError {
            TraceError(file: file, .line(i + 1), .syntax, "\(kind) line: \(what): '\(raw.prefix(100))'")
        }
        func field(_ k: Substring) throws(TraceError) -> UInt64 {
            guard let v = fields[k], v.hasPrefix("0x"), let n = UInt64(v.dropFirst(2), radix: 16) else { throw bad("no hex \(k)=") }
            return n
        }
        guard let retText = fields["ret"], let ret = Int(retText) else { throw bad("no ret=") }
        if kind == "MAP" {
            let flags = try field("flags")
            guard flags & ~3 == 0 else { throw bad("unknown map flags \(hex(flags))") }
            // VFIO_DMA_MAP_FLAG_READ is 1, WRITE is 2: the same bits as the trace's access.
            out.append(
                (
                    .map(
                        iova: try field("iova"), vaddr: try field("vaddr"), size: try field("size"), access: Access(rawValue: UInt8(flags))),
                    i + 1
                ))
        } else if kind == "IOAS_MAP" {
            // IOMMU_IOAS_MAP: FIXED_IOVA 1, WRITEABLE 2, READABLE 4 (include/uapi/linux/iommufd.h).
            let flags = try field("flags")
            guard flags & ~7 == 0 else { throw bad("unknown IOAS map flags \(hex(flags))") }
            guard flags & 1 != 0 else {
                throw bad("no IOMMU_IOAS_MAP_FIXED_IOVA: the kernel chose the iova, which the line does not carry")
            }
            let access: Access = [flags & 4 != 0 ? .read : [], flags & 2 != 0 ? .write : []]
            out.append((.map(iova: try field("iova"), vaddr: try field("vaddr"), size: try field("size"), access: access), i + 1))
        } else {
            out.append((.unmap(iova: try field("iova"), size: try field("size")), i + 1))
        }
        out.append((.mark("the host returned \(ret)"), i + 1))
    }
    return out
}

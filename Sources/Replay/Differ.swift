import VFIOModel

/// How two engines' answers to one request differ, most serious first.
public enum DivergenceKind: String, Sendable, CaseIterable {
    /// Different return codes.
    case returnCode = "return-code"
    /// Different iova→pfn translations (or unmapped sizes, or pinned pfns).
    case mapping
    /// Different `locked_vm` after the request.
    case accounting
    /// Identical outcomes, but different page references taken or dropped on ram.
    case pageReferences = "page-references"
    /// The same iova→pfn translation cut into different chunks: a cost, not a correctness issue.
    case chunkBoundaries = "chunk-boundaries"

    /// How a report names it.
    public var title: String {
        switch self {
        case .returnCode: "return code"
        case .mapping: "mapping (iova→pfn differs)"
        case .accounting: "accounting (locked_vm)"
        case .pageReferences: "page references"
        case .chunkBoundaries: "chunk boundaries only (same iova→pfn mapping)"
        }
    }
}

/// Compares the outcomes of one request across engines; the first engine is the reference.
public enum Differ {
    /// What a request changed on one engine's host: `locked_vm` and net ram page references.
    public struct Effect: Equatable, Sendable {
        /// `locked_vm` after the request.
        public var lockedVM: Int64
        /// Net ram page references held after the request.
        public var ramRefs: Int64
        /// The state after a request.
        public init(lockedVM: Int64, ramRefs: Int64) {
            self.lockedVM = lockedVM
            self.ramRefs = ramRefs
        }
    }

    /// The most serious way any engine differs from the first, with a line saying how.
    /// Accounting and references are compared by what this request changed, not by totals.
    /// Without `describe` the detail is empty: a replay past its examples only counts, and
    /// the line costs more than the comparison.
    public static func compare(
        _ outcomes: [RequestOutcome], effects: [Effect], engines: [String], describe: Bool = true
    ) -> (kind: DivergenceKind, detail: String)? {
        if outcomes.contains(where: { !$0.ran }) {
            // An engine that crashed earlier answered nothing: the others are compared alone.
            let keep = outcomes.indices.filter { outcomes[$0].ran }
            return compare(
                keep.map { outcomes[$0] }, effects: keep.map { effects[$0] }, engines: keep.map { engines[$0] }, describe: describe)
        }
        guard let base = outcomes.first, outcomes.count > 1 else { return nil }
        var worst: (kind: DivergenceKind, engine: Int)?
        for i in 1..<outcomes.count {
            guard let k = worstKind(base, outcomes[i], effects[0], effects[i]) else { continue }
            if worst == nil || rank(k) < rank(worst!.kind) { worst = (k, i) }
        }
        guard let worst else { return nil }
        guard describe else { return (worst.kind, "") }
        let i = worst.engine
        return compare(base, outcomes[i], engines[0], engines[i], effects[0], effects[i])
    }

    /// The most serious way `b` differs from `a`, as `compare` would name it, without the line.
    static func worstKind(_ a: RequestOutcome, _ b: RequestOutcome, _ ae: Effect, _ be: Effect) -> DivergenceKind? {
        if a.ret != b.ret { return .returnCode }
        var boundaries = false
        switch (a, b) {
        case let (.map(_, ac, _), .map(_, bc, _)) where ac != bc:
            if firstPageDifference(flatten(ac), flatten(bc)) != nil { return .mapping }
            boundaries = true
        case let (.unmap(_, au, _), .unmap(_, bu, _)) where au != bu: return .mapping
        case let (.pin(_, ap, _), .pin(_, bp, _)) where ap != bp: return .mapping
        default: break
        }
        if ae.lockedVM != be.lockedVM { return .accounting }
        if ae.ramRefs != be.ramRefs { return .pageReferences }
        return boundaries ? .chunkBoundaries : nil
    }

    private static func rank(_ k: DivergenceKind) -> Int { DivergenceKind.allCases.firstIndex(of: k) ?? 0 }

    /// Every way `b` differs from `a`, most serious first, each with a line saying how.
    static func compare(
        _ a: RequestOutcome, _ b: RequestOutcome, _ an: String, _ bn: String, _ ae: Effect, _ be: Effect
    ) -> (kind: DivergenceKind, detail: String)? {
        var found: [(kind: DivergenceKind, detail: String)] = []
        if a.ret != b.ret {
            found.append((.returnCode, "\(an) returns \(retName(a.ret)), \(bn) returns \(retName(b.ret))"))
        }
        switch (a, b) {
        case let (.map(_, ac, _), .map(_, bc, _)) where ac != bc:
            if let (iova, pa, pb) = firstPageDifference(flatten(ac), flatten(bc)) {
                found.append((.mapping, "at iova \(iova): \(an) maps \(pfnText(pa)), \(bn) maps \(pfnText(pb))"))
            }
            let i = firstDifference(ac, bc)
            found.append(
                (
                    .chunkBoundaries,
                    "\(an) maps \(ac.count) chunk\(ac.count == 1 ? "" : "s"), \(bn) \(bc.count); first differing chunk #\(i): "
                        + "\(an) \(chunkText(ac, i)), \(bn) \(chunkText(bc, i))"
                ))
        case let (.unmap(_, au, _), .unmap(_, bu, _)) where au != bu:
            found.append((.mapping, "\(an) unmaps \(au) bytes, \(bn) \(bu)"))
        case let (.pin(_, ap, _), .pin(_, bp, _)) where ap != bp:
            let i = firstDifference(ap, bp)
            found.append(
                (.mapping, "pinned pfn #\(i): \(an) \(i < ap.count ? "\(ap[i])" : "none"), \(bn) \(i < bp.count ? "\(bp[i])" : "none")"))
        default:
            break
        }
        if ae.lockedVM != be.lockedVM {
            found.append((.accounting, "locked_vm \(an) \(signed(ae.lockedVM)), \(bn) \(signed(be.lockedVM))"))
        }
        if ae.ramRefs != be.ramRefs {
            found.append((.pageReferences, "net ram page references \(an) \(signed(ae.ramRefs)), \(bn) \(signed(be.ramRefs))"))
        }
        found.sort { rank($0.kind) < rank($1.kind) }
        guard let first = found.first else { return nil }
        let also = found.dropFirst().map(\.kind.rawValue)
        return (first.kind, first.detail + (also.isEmpty ? "" : "; also " + also.joined(separator: ", ")))
    }

    /// Chunks merged wherever both iova and pfn run on: the translation itself.
    static func flatten(_ chunks: [Chunk]) -> [Chunk] {
        var out: [Chunk] = []
        out.reserveCapacity(chunks.count)
        for c in chunks {
            if let last = out.last, last.iova + last.npage << PAGE_SHIFT == c.iova, last.pfn + Int(last.npage) == c.pfn {
                out[out.count - 1].npage += c.npage
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// The first index at which two arrays differ (the shorter one's length if one is a prefix).
    static func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
        var i = 0
        while i < a.count && i < b.count && a[i] == b[i] { i += 1 }
        return i
    }

    /// The first iova at which two translations (ascending, flattened) disagree, and the pfn
    /// each maps there (nil: nothing mapped).
    static func firstPageDifference(_ a: [Chunk], _ b: [Chunk]) -> (IOVA, PFN?, PFN?)? {
        var (i, j) = (0, 0)
        var (offA, offB): (UInt64, UInt64) = (0, 0)
        while i < a.count && j < b.count {
            let ia = a[i].iova + offA << PAGE_SHIFT
            let ib = b[j].iova + offB << PAGE_SHIFT
            let pa = a[i].pfn + Int(offA)
            let pb = b[j].pfn + Int(offB)
            if ia != ib { return ia < ib ? (ia, pa, nil) : (ib, nil, pb) }
            if pa != pb { return (ia, pa, pb) }
            // Both runs advance one pfn per page: equal at the start, equal throughout.
            let step = min(a[i].npage - offA, b[j].npage - offB)
            offA += step
            offB += step
            if offA == a[i].npage { (i, offA) = (i + 1, 0) }
            if offB == b[j].npage { (j, offB) = (j + 1, 0) }
        }
        if i < a.count { return (a[i].iova + offA << PAGE_SHIFT, a[i].pfn + Int(offA), nil) }
        if j < b.count { return (b[j].iova + offB << PAGE_SHIFT, nil, b[j].pfn + Int(offB)) }
        return nil
    }

    static func pfnText(_ p: PFN?) -> String { p.map { "pfn \($0)" } ?? "nothing" }

    static func chunkText(_ chunks: [Chunk], _ i: Int) -> String {
        i < chunks.count ? "[\(chunks[i].iova), \(chunks[i].pfn), \(chunks[i].npage)]" : "none"
    }

    static func signed(_ v: Int64) -> String { v >= 0 ? "+\(v)" : "\(v)" }
}

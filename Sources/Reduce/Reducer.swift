import Dispatch
import Replay
import Synchronization
import TraceFormat
import VFIOEngines
import VFIOModel

/// Shrinks a trace to a short one that still shows a finding: ddmin over statements (the
/// result is 1-minimal: dropping any one statement loses the finding or makes the trace
/// invalid), then smaller sizes and counts and no names, until nothing more goes.
///
/// Deterministic: candidates are tried in a fixed order and, when several are evaluated at
/// once, the first in that order wins whatever finishes first.
public struct Reducer: Sendable {
    /// The engines candidates run through.
    public let engines: [any Engine]
    /// The finding every candidate must still show.
    public let keep: Finding
    /// Candidates evaluated at once.
    public var jobs: Int
    /// Called with the statement count as it shrinks.
    public var progress: (@Sendable (Int) -> Void)?

    /// A reducer keeping `keep` on `engines`, trying `jobs` candidates at once.
    public init(engines: [any Engine], keep: Finding, jobs: Int) {
        self.engines = engines
        self.keep = keep
        self.jobs = max(1, jobs)
    }

    /// Whether these statements make a valid trace that shows the finding. An invalid one is
    /// simply not interesting.
    public func shows(_ statements: [Statement]) -> Bool {
        var none = NoObserver()
        guard let report = try? Replayer(engines: engines).replay(statements: statements, name: "candidate", observer: &none)
        else { return false }
        return keep.isShown(by: report)
    }

    /// The reduced statements (the input if nothing could go).
    public func reduce(_ input: [Statement]) -> [Statement] {
        var current = input
        for _ in 0..<4 {
            let before = current
            current = ddmin(current)
            current = simplify(current)
            if current == before { break }
        }
        return current
    }

    /// The index of the first candidate that shows the finding, evaluating `jobs` at a time.
    func firstShowing(_ candidates: [[Statement]]) -> Int? {
        var start = 0
        while start < candidates.count {
            let wave = Array(candidates[start..<min(candidates.count, start + jobs)])
            let hits = Mutex([Bool](repeating: false, count: wave.count))
            DispatchQueue.concurrentPerform(iterations: wave.count) { i in
                let ok = shows(wave[i])
                hits.withLock { $0[i] = ok }
            }
            if let i = hits.withLock({ $0.firstIndex(of: true) }) { return start + i }
            start += wave.count
        }
        return nil
    }

    /// ddmin by complements: drop one of n parts while that keeps the finding; refine n up to
    /// one statement per part, where no single drop keeps it.
    func ddmin(_ input: [Statement]) -> [Statement] {
        var c = input
        var n = 2
        while c.count >= 2 {
            let size = (c.count + n - 1) / n
            let parts = stride(from: 0, to: c.count, by: size).map { $0..<min(c.count, $0 + size) }
            let complements = parts.map { r in Array(c[..<r.lowerBound] + c[r.upperBound...]) }
            if let k = firstShowing(complements) {
                c = complements[k]
                n = max(n - 1, 2)
                progress?(c.count)
                continue
            }
            if size == 1 { break }
            n = min(c.count, n * 2)
        }
        return c
    }

    /// Simpler spellings of the statements that are left, one at a time, while they keep the
    /// finding.
    func simplify(_ input: [Statement]) -> [Statement] {
        var c = input
        for i in c.indices {
            var changed = true
            while changed {
                changed = false
                let variants = Self.simpler(c[i]).map { v -> [Statement] in
                    var t = c
                    t[i] = v
                    return t
                }
                if let k = firstShowing(variants) {
                    c = variants[k]
                    changed = true
                }
            }
        }
        return c
    }

    /// Simpler forms of one statement, simplest first: fewer pages, no name.
    static func simpler(_ s: Statement) -> [Statement] {
        func counts(_ n: UInt64) -> [UInt64] { n > 1 ? [1, n / 2].filter { $0 < n } : [] }
        func sizes(_ b: UInt64) -> [UInt64] {
            b > 0x1000 && b & 0xfff == 0 ? [0x1000, (b / 2) & ~0xfff].filter { $0 >= 0x1000 && $0 < b } : []
        }
        switch s {
        case let .pfns(kind, start, count): return counts(count).map { .pfns(kind, start: start, count: $0) }
        case let .pool(start, count): return counts(count).map { .pool(start: start, count: $0) }
        case let .pte(vaddr, count, pfn, ro, leaf) where leaf == .k4:
            return counts(count).map { .pte(vaddr: vaddr, count: $0, pfn: pfn, readOnly: ro) }
        case let .touch(vaddr, count, write): return counts(count).map { .touch(vaddr: vaddr, count: $0, write: write) }
        case let .map(iova, vaddr, size, access): return sizes(size).map { .map(iova: iova, vaddr: vaddr, size: $0, access: access) }
        case let .unmap(iova, size): return sizes(size).map { .unmap(iova: iova, size: $0) }
        case let .pin(iova, count, access): return counts(count).map { .pin(iova: iova, count: $0, access: access) }
        case let .unpin(iova, count): return counts(count).map { .unpin(iova: iova, count: $0) }
        case .vma(var v) where !v.name.isEmpty:
            v.name = ""
            return [.vma(v)]
        default: return []
        }
    }

    /// The reproducer as canonical text with a header saying where it came from.
    public static func render(_ statements: [Statement], source: String, sourceCount: Int, engines: [String], keep: Finding) -> String {
        reproducer(
            statements,
            comments: [
                "pinreplay reduce: \(keep) on \(engines.joined(separator: ","))",
                "from \(source): \(sourceCount) statements, reduced to \(statements.count)",
            ])
    }

    /// Canonical text under header comments.
    static func reproducer(_ statements: [Statement], comments: [String]) -> String {
        (comments.map { "# " + $0 } + [textHeader] + statements.map(\.canonicalText)).joined(separator: "\n") + "\n"
    }
}

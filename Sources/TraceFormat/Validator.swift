import VFIOModel

/// The rules every statement must meet whatever form it came in (SPEC.md §5), with the little
/// state they need: the first statement's `page_shift`, the reserved ranges for `zero_page`.
struct StatementValidator {
    /// Frames live below 2^52 (a 64-bit physical address space of 4 KiB pages).
    static let pfnLimit: UInt64 = 1 << 52
    private static let pageMask: UInt64 = 0xfff

    /// `pfns` statements so far, newest last: a zero page must lie in a reserved range.
    private var classRanges: [(start: UInt64, end: UInt64, kind: PfnClass)] = []
    /// Whether a request has come: `dma_entry_limit` is read when the container opens.
    private var sawRequest = false

    @inline(__always)
    mutating func check(_ s: Statement) throws(StatementProblem) {
        switch s {
        case .map, .unmap, .unmapAll, .pin, .unpin:
            // Requests take any values: misaligned or empty ones are the kernel's to refuse.
            sawRequest = true
        case .dmaEntryLimit:
            guard !sawRequest else {
                throw StatementProblem("dma_entry_limit after the first request: the kernel reads it when the container opens")
            }
        case .pageShift(let shift):
            guard shift == 12 else { throw StatementProblem("page_shift must be 12 in version 1, not \(shift)") }
        case .lockedVM(let n):
            guard n <= UInt64(Int64.max) else { throw StatementProblem("locked_vm \(n) is out of range") }
        case .userLockedVM(let n):
            guard n <= UInt64(Int64.max) else { throw StatementProblem("user_locked_vm \(n) is out of range") }
        case let .pfns(kind, start, count):
            try Self.pfnRange(start, count)
            classRanges.append((start, start + count, kind))
        case .zeroPage(let pfn):
            let last = classRanges.last { $0.start <= pfn && pfn < $0.end }
            guard last?.kind == .reserved else {
                throw StatementProblem("zero_page \(hex(pfn)) does not lie in a reserved range")
            }
        case let .pool(start, count):
            try Self.pfnRange(start, count)
        case .vma(let v):
            try Self.vaRange(v.start.rawValue, v.end.rawValue)
            if v.hugetlbSize != 0 {
                guard v.hugetlbSize >= 4096, v.hugetlbSize & (v.hugetlbSize - 1) == 0 else {
                    throw StatementProblem("hugetlb=\(hex(v.hugetlbSize)) is not a power of two of at least 4 KiB")
                }
                guard v.start.rawValue & (v.hugetlbSize - 1) == 0, v.end.rawValue & (v.hugetlbSize - 1) == 0 else {
                    throw StatementProblem("VMA \(v.start)-\(v.end) is not aligned to its huge page size \(hex(v.hugetlbSize))")
                }
            }
        case let .munmap(start, end):
            try Self.vaRange(start, end)
        case let .pte(vaddr, count, pfn, readOnly, leaf):
            try Self.vaPages(vaddr, count)
            if let pfn { try Self.pfnRange(pfn, count) }
            if pfn == nil && readOnly { throw StatementProblem("pte none takes no ro flag") }
            if leaf != .k4 {
                let n = leaf.pages
                guard let pfn, vaddr & (n << 12 - 1) == 0, pfn & (n - 1) == 0, count % n == 0 else {
                    throw StatementProblem(
                        "leaf=\(leaf.keyword) needs VADDR and PFN aligned to \(leaf.keyword) and COUNT a multiple of \(n)")
                }
            }
        case let .touch(vaddr, count, _):
            try Self.vaPages(vaddr, count)
        case .mark(let text):
            // Any text: the text form escapes what it cannot write plainly.
            guard !text.isEmpty else { throw StatementProblem("mark text is empty") }
        case .memlock, .capIpcLock, .disableHugepages, .thp:
            break
        }
    }

    private static func pfnRange(_ start: UInt64, _ count: UInt64) throws(StatementProblem) {
        guard count > 0 else { throw StatementProblem("COUNT must be at least 1") }
        guard start < pfnLimit, count <= pfnLimit - start else {
            throw StatementProblem("pfn range \(hex(start))+\(count) goes past 2^52")
        }
    }

    private static func vaRange(_ start: UInt64, _ end: UInt64) throws(StatementProblem) {
        guard end > start else { throw StatementProblem("END \(hex(end)) is not above START \(hex(start))") }
        guard start & pageMask == 0, end & pageMask == 0 else {
            throw StatementProblem("range \(hex(start))-\(hex(end)) is not page aligned")
        }
    }

    private static func vaPages(_ vaddr: UInt64, _ count: UInt64) throws(StatementProblem) {
        guard vaddr & pageMask == 0 else { throw StatementProblem("VADDR \(hex(vaddr)) is not page aligned") }
        guard count > 0 else { throw StatementProblem("COUNT must be at least 1") }
        // The range must end below 2^64, so that its end is an address.
        guard count <= (UInt64.max - vaddr) >> 12 else {
            throw StatementProblem("range \(hex(vaddr))+\(count) pages reaches 2^64")
        }
    }
}

/// The rules of the text form applied to statements that come from neither reader (a
/// reducer's candidate, a generated trace): statement after statement, in order.
public struct TraceRules: Sendable {
    private var validator = StatementValidator()
    /// Rules for a trace that has not started.
    public init() {}

    /// What is wrong with the next statement, or nil.
    public mutating func problem(_ s: Statement) -> String? {
        do {
            try validator.check(s)
            return nil
        } catch {
            return error.message
        }
    }
}

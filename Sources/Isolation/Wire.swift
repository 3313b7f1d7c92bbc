import VFIOModel

/// The records an isolated engine's process sends its parent, one line each:
/// `E EVENT OUTCOME;COUNTERS;STATE;VIOLATIONS` after each statement, `T ;COUNTERS;STATE;VIOLATIONS`
/// after the teardown, `X MESSAGE` when the world cannot follow the trace, and from the crash
/// handler `!crash SIGNAL SYSCALL PC`. Numbers are decimal; a record is one `write()`.
enum Wire {
    /// What one record says.
    enum Record: Equatable {
        case event(Int, RequestOutcome?, State)
        case teardown(State)
        case worldError(String)
        case crash(signal: Int32, syscall: Int, pc: UInt64)
    }

    /// The host's state after a statement.
    struct State: Equatable {
        var counters: CostCounters
        var ramRefs: Int64
        var lockedVM: Int64
        var userLockedVM: Int64
        var pinnedVM: Int64
        var violations: [Violation]
    }

    static func encode(event: Int, _ outcome: RequestOutcome?, _ state: State) -> String {
        "E \(event) " + encode(outcome) + ";" + encode(state) + "\n"
    }

    static func encodeTeardown(_ state: State) -> String { "T ;" + encode(state) + "\n" }

    static func encode(_ o: RequestOutcome?) -> String {
        switch o {
        case nil: "-"
        case let .map(ret, chunks, locked):
            "m \(ret) \(locked)" + chunks.map { " \($0.iova.rawValue):\($0.pfn.rawValue):\($0.npage)" }.joined()
        case let .unmap(ret, unmapped, locked): "u \(ret) \(unmapped) \(locked)"
        case let .pin(ret, pfns, locked): "p \(ret) \(locked)" + pfns.map { " \($0.rawValue)" }.joined()
        case let .unpin(ret, locked): "n \(ret) \(locked)"
        case .notRun(let op): "x \(op)"
        }
    }

    static func encode(_ s: State) -> String {
        Counter.allCases.map { String(s.counters[$0]) }.joined(separator: " ")
            + ";\(s.ramRefs) \(s.lockedVM) \(s.userLockedVM) \(s.pinnedVM);"
            + s.violations.map(encode).joined(separator: "|")
    }

    static func encode(_ v: Violation) -> String {
        switch v {
        case let .foreignPfn(iova, vaddr, mapped, held, pages):
            "f \(iova.rawValue) \(vaddr.rawValue) \(mapped.rawValue) \(held.map { String($0.rawValue) } ?? "-") \(pages)"
        case let .refcountUnderflow(pfn, delta, pages): "r \(pfn.rawValue) \(delta) \(pages)"
        case let .leakedRefs(pfn, delta, pages): "l \(pfn.rawValue) \(delta) \(pages)"
        case let .leakedLockedVM(locked, baseline): "L \(locked) \(baseline)"
        case let .leakedCounter(name, value, baseline): "c \(value) \(baseline) \(name)"
        case .crash(let what): "C " + what.replacingOccurrences(of: "|", with: "/")
        }
    }

    /// A record, or nil when the line is not one (a worker that broke the protocol).
    static func decode(_ line: Substring) -> Record? {
        if line.hasPrefix("!crash ") {
            let w = line.split(separator: " ")
            guard w.count == 4, let sig = Int32(w[1]), let sys = Int(w[2]), w[3].hasPrefix("0x"),
                let pc = UInt64(w[3].dropFirst(2), radix: 16)
            else { return nil }
            return .crash(signal: sig, syscall: sys, pc: pc)
        }
        if line.hasPrefix("X ") { return .worldError(String(line.dropFirst(2))) }
        let parts = line.split(separator: ";", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, let state = decodeState(parts[1], parts[2], parts[3]) else { return nil }
        if line.hasPrefix("T ") { return .teardown(state) }
        let head = parts[0].split(separator: " ", maxSplits: 2)
        guard head.count == 3, head[0] == "E", let event = Int(head[1]) else { return nil }
        if head[2] == "-" { return .event(event, nil, state) }
        guard let o = decodeOutcome(head[2]) else { return nil }
        return .event(event, o, state)
    }

    static func decodeOutcome(_ s: Substring) -> RequestOutcome? {
        let w = s.split(separator: " ")
        guard let kind = w.first, w.count >= 2 else { return nil }
        func int(_ k: Int) -> Int64? { k < w.count ? Int64(w[k]) : nil }
        switch kind {
        case "m":
            guard let ret = int(1), let locked = int(2) else { return nil }
            var chunks: [Chunk] = []
            for c in w.dropFirst(3) {
                let f = c.split(separator: ":")
                guard f.count == 3, let iova = UInt64(f[0]), let pfn = UInt64(f[1]), let n = UInt64(f[2]) else { return nil }
                chunks.append(Chunk(iova: IOVA(iova), pfn: PFN(pfn), npage: n))
            }
            return .map(ret: Int(ret), chunks: chunks, lockedVM: locked)
        case "u":
            guard let ret = int(1), w.count == 4, let unmapped = UInt64(w[2]), let locked = int(3) else { return nil }
            return .unmap(ret: Int(ret), unmapped: unmapped, lockedVM: locked)
        case "p":
            guard let ret = int(1), let locked = int(2) else { return nil }
            var pfns: [PFN] = []
            for p in w.dropFirst(3) {
                guard let v = UInt64(p) else { return nil }
                pfns.append(PFN(v))
            }
            return .pin(ret: Int(ret), pfns: pfns, lockedVM: locked)
        case "n":
            guard let ret = int(1), let locked = int(2) else { return nil }
            return .unpin(ret: Int(ret), lockedVM: locked)
        default:
            return nil
        }
    }

    static func decodeState(_ counters: Substring, _ state: Substring, _ violations: Substring) -> State? {
        let c = counters.split(separator: " ").compactMap { Int($0) }
        let s = state.split(separator: " ").compactMap { Int64($0) }
        guard c.count == Counter.allCases.count, s.count == 4 else { return nil }
        var vs: [Violation] = []
        for v in violations.split(separator: "|") {
            guard let d = decodeViolation(v) else { return nil }
            vs.append(d)
        }
        return State(counters: CostCounters(c), ramRefs: s[0], lockedVM: s[1], userLockedVM: s[2], pinnedVM: s[3], violations: vs)
    }

    static func decodeViolation(_ s: Substring) -> Violation? {
        let w = s.split(separator: " ", maxSplits: 5)
        guard let kind = w.first else { return nil }
        func u(_ k: Int) -> UInt64? { k < w.count ? UInt64(w[k]) : nil }
        func i(_ k: Int) -> Int64? { k < w.count ? Int64(w[k]) : nil }
        switch kind {
        case "f":
            guard let iova = u(1), let vaddr = u(2), let mapped = u(3), w.count == 6, let pages = u(5) else { return nil }
            return .foreignPfn(iova: IOVA(iova), vaddr: VAddr(vaddr), mapped: PFN(mapped), held: u(4).map { PFN($0) }, pages: pages)
        case "r":
            guard let pfn = u(1), let delta = i(2), let pages = u(3) else { return nil }
            return .refcountUnderflow(pfn: PFN(pfn), delta: delta, pages: pages)
        case "l":
            guard let pfn = u(1), let delta = i(2), let pages = u(3) else { return nil }
            return .leakedRefs(pfn: PFN(pfn), delta: delta, pages: pages)
        case "L":
            guard let locked = i(1), let baseline = i(2) else { return nil }
            return .leakedLockedVM(lockedVM: locked, baseline: baseline)
        case "c":
            guard let value = i(1), let baseline = i(2), w.count >= 4 else { return nil }
            return .leakedCounter(name: String(s.split(separator: " ", maxSplits: 3)[3]), value: value, baseline: baseline)
        case "C":
            return .crash(what: String(s.dropFirst(2)))
        default:
            return nil
        }
    }
}

import TraceFormat
import VFIOEngines
import VFIOModel

/// The hosts, handed to worker threads: each worker touches only the host of its own index,
/// and the hosts share nothing, so this is safe though `Host` is not `Sendable`.
private struct DisjointHosts: @unchecked Sendable {
    let hosts: [Host]
    /// Each host's engine process, if it has one (each used by its host's task alone).
    let followers: [(any TraceFollower)?]
}

/// Per-engine figures over a whole trace.
public struct EngineSummary: Sendable {
    /// The engine, by canonical name.
    public var engine: String
    /// What the engine did, counted per operation (the cost model prices them).
    public var counters = CostCounters()
    /// Chunks passed to `iommu_map()` over all map requests.
    public var chunksMapped = 0
    /// Pages in those chunks.
    public var pagesPinned: UInt64 = 0
    /// The highest `locked_vm` after any request.
    public var lockedVMPeak: Int64 = 0
    /// `locked_vm` after the last event, before the final teardown.
    public var lockedVMFinal: Int64 = 0
    /// The counter `locked_vm` is for this engine (`mm->locked_vm`, or iommufd's `user->locked_vm`).
    public var lockedVMCounter = LockedVMCounter.mm.rawValue
    /// The highest `mm->pinned_vm` after any request (only iommufd moves it).
    public var pinnedVMPeak: Int64 = 0
    /// Whether any engine's summary has something to say of these two.
    static func showsCounters(_ s: [EngineSummary]) -> Bool {
        s.contains { $0.lockedVMCounter != LockedVMCounter.mm.rawValue || $0.pinnedVMPeak != 0 }
    }
}

/// One request on which the engines' outcomes differ.
public struct Divergence: Sendable {
    /// The event number of the request.
    public var event: Int
    /// The request in canonical text form.
    public var request: String
    /// `map`, `unmap`, `pin` or `unpin`.
    public var op: String
    /// The most serious way the outcomes differ.
    public var kind: DivergenceKind
    /// The nearest `mark` before the request, if any.
    public var mark: String?
    /// One line saying what differs.
    public var detail: String
    /// Each engine's outcome, in engine order.
    public var outcomes: [RequestOutcome]
    /// Each engine's estimated kernel time for the request, ns, in engine order.
    public var estimates: [Int] = []
    /// The event of an earlier request after which the engines' state (locked_vm, ram page
    /// references) has differed ever since: what this divergence may follow from.
    public var since: Int?
}

/// A request that failed alike (the same nonzero return code) on every engine.
/// Words an engine gave for its answers (`Engine.explain`), gathered over a trace.
public struct Explanation: Sendable {
    /// The engines that gave it, in engine order.
    public var engines: [String]
    /// Requests it was given for, summed over its engines.
    public var count: Int
    /// The first event it was given for.
    public var firstEvent: Int
    /// The words.
    public var text: String
}

/// A backend whose engine replays the trace in a process of its own (an isolated C engine):
/// started with the trace file, it answers every statement from that process's records and
/// mirrors the state it reports into the host.
public protocol TraceFollower: AnyObject {
    /// Whether the engine's process crashed or hung; it answers nothing after that.
    var crashed: Bool { get }
    /// Starts the engine's process on the trace at `path`.
    func start(trace path: String) throws(TraceError)
    /// The engine's answer to statement `s` (event `event`), its state mirrored into `host`.
    func follow(_ s: Statement, event: Int, on host: Host) throws(WorldError) -> RequestOutcome?
    /// The teardown's violations and counters, mirrored into `host`; ends the process.
    func finish(on host: Host)
}

public struct SharedFailure: Sendable {
    /// The event number of the request.
    public var event: Int
    /// The request in canonical text form.
    public var request: String
    /// The return code every engine gave.
    public var ret: Int
    /// The nearest `mark` before the request, if any.
    public var mark: String?
}

/// A request and each engine's estimated kernel time for it.
public struct CostlyRequest: Sendable {
    /// The event number of the request.
    public var event: Int
    /// The request in canonical text form.
    public var request: String
    /// Each engine's estimated kernel time, ns, in engine order.
    public var estimates: [Int]
}

/// The engines' state stopped agreeing after this request: `locked_vm` and the net ram page
/// references each engine holds then (in engine order).
public struct StateDifference: Sendable {
    /// The event number of the request.
    public var event: Int
    /// `locked_vm` after the request, per engine.
    public var lockedVM: [Int64]
    /// Net ram page references held after the request, per engine.
    public var ramRefs: [Int64]

    /// "v4.17-rc1's locked_vm differs by -3 and its ram page references by -3 from v4.16's".
    public func describe(_ engines: [String]) -> String {
        guard let i = lockedVM.indices.dropFirst().first(where: { lockedVM[$0] != lockedVM[0] || ramRefs[$0] != ramRefs[0] }) else {
            return "the engines' state differs"
        }
        var parts: [String] = []
        if lockedVM[i] != lockedVM[0] { parts.append("locked_vm differs by \(signed(lockedVM[i] - lockedVM[0]))") }
        if ramRefs[i] != ramRefs[0] {
            parts.append((parts.isEmpty ? "" : "its ") + "ram page references by \(signed(ramRefs[i] - ramRefs[0]))")
        }
        if parts.count == 1 && ramRefs[i] != ramRefs[0] { parts[0] = "ram page references differ by \(signed(ramRefs[i] - ramRefs[0]))" }
        return "\(engines[i])'s " + parts.joined(separator: " and ") + " from \(engines[0])'s"
    }

    private func signed(_ v: Int64) -> String { v > 0 ? "+\(v)" : "\(v)" }
}

/// A violation on one engine.
public struct EngineViolation: Sendable {
    /// The engine's name.
    public var engine: String
    /// The event it happened at (past the last for the teardown).
    public var event: Int
    /// What broke, and where.
    public var violation: Violation
}

/// Everything a replay of one trace found. Memory stays bounded whatever the trace: findings
/// are counted, and only the first `examples` of each kind are kept.
public struct TraceReport: Sendable {
    /// The trace as named on the command line.
    public var trace: String
    /// Text or binary.
    public var form: TraceForm
    /// Statements after the header.
    public var events = 0
    /// Map, unmap, pin and unpin statements.
    public var requests = 0
    /// The engines, by canonical name, the reference first.
    public var engines: [String]
    /// Per-engine figures, in engine order.
    public var summaries: [EngineSummary]
    /// The first divergences of each kind, in event order.
    public var divergences: [Divergence] = []
    /// Divergences of each kind, in `DivergenceKind.allCases` order.
    public var divergenceCounts = [Int](repeating: 0, count: DivergenceKind.allCases.count)
    /// The first violations of each kind on each engine, by event then engine.
    public var violations: [EngineViolation] = []

    /// Where a crash stopped an engine (at most once each): its requests from there on were not
    /// run, so "no divergence" covers only what ran before. E.g. `null stopped at event 18`.
    public var stoppedEngines: String? {
        let crashes = violations.filter { $0.violation.kind == .crash }
        guard !crashes.isEmpty else { return nil }
        return crashes.map { "\($0.engine) stopped at event \($0.event)" }.joined(separator: ", ")
    }
    /// Violations per engine and kind.
    public var violationCounts: [ViolationKey: Int] = [:]
    /// The first requests that failed alike on every engine.
    public var sharedFailures: [SharedFailure] = []
    /// Requests that failed alike on every engine, all of them.
    public var sharedFailureCount = 0
    /// Why engines answered as they did, in words, each with its engines, count and first event.
    public var explanations: [Explanation] = []
    /// How each engine's `iommu_map()` calls compare with the host's, when its trace was given.
    public var hostIOMMU: [HostIOMMUMatch]?
    /// Each time the engines' state stopped agreeing (the first ones).
    public var stateDifferences: [StateDifference] = []
    /// The most expensive requests (by the costliest engine's estimate), most expensive first.
    public var costliest: [CostlyRequest] = []

    /// Divergences of every kind.
    public var divergenceCount: Int { divergenceCounts.reduce(0, +) }
    /// Violations on every engine.
    public var violationCount: Int { violationCounts.values.reduce(0, +) }
    /// Divergences of one kind.
    public func count(_ kind: DivergenceKind) -> Int { divergenceCounts[DivergenceKind.allCases.firstIndex(of: kind) ?? 0] }

    /// Exit status of SPEC.md §6: 1 when anything diverged or broke an invariant.
    public var isClean: Bool { divergenceCount == 0 && violationCount == 0 }
}

extension TraceReport {
    /// The first divergence by event: where a report opens.
    public var firstDivergence: Divergence? { divergences.min { $0.event < $1.event } }

    /// Where the engines' state first stopped agreeing, when anything diverged.
    public var firstStateDifference: StateDifference? { divergenceCount > 0 ? stateDifferences.first : nil }

    /// The kept divergences that came while the engines' state agreed, and those that followed
    /// an earlier state difference, grouped by it in event order (the "since event N" sections).
    public func divergencesByCause() -> (direct: [Divergence], causes: [(event: Int, cause: StateDifference?, divergences: [Divergence])]) {
        let grouped = Dictionary(grouping: divergences.filter { $0.since != nil }) { $0.since ?? 0 }
        let causes = grouped.keys.sorted().map { event in
            (event, stateDifferences.first { $0.event == event }, grouped[event] ?? [])
        }
        return (divergences.filter { $0.since == nil }, causes)
    }

    /// The first `count` of the costliest requests that cost anything at all.
    public func costliestShown(_ count: Int) -> [CostlyRequest] {
        costliest.prefix(count).filter { ($0.estimates.max() ?? 0) > 0 }
    }

    /// The violations grouped for a report: per engine that has any, per kind in
    /// `ViolationKind` order, the total and the first `maxExamples` kept.
    public func violationGroups(maxExamples: Int) -> [(
        engine: String, kinds: [(kind: ViolationKind, total: Int, examples: [EngineViolation])]
    )] {
        engines.compactMap { engine in
            let kinds = ViolationKind.allCases.compactMap { kind -> (kind: ViolationKind, total: Int, examples: [EngineViolation])? in
                guard let total = violationCounts[ViolationKey(engine: engine, kind: kind)] else { return nil }
                let examples = violations.filter { $0.engine == engine && $0.violation.kind == kind }.prefix(maxExamples)
                return (kind, total, Array(examples))
            }
            return kinds.isEmpty ? nil : (engine, kinds)
        }
    }

    /// A request's outcomes in the per-engine figures.
    mutating func noteOutcomes(_ outcomes: [RequestOutcome]) {
        requests += 1
        for (i, o) in outcomes.enumerated() {
            if case .map(_, let chunks, _) = o {
                summaries[i].chunksMapped += chunks.count
                summaries[i].pagesPinned += chunks.reduce(0) { $0 + $1.npage }
            }
            summaries[i].lockedVMPeak = max(summaries[i].lockedVMPeak, o.lockedVM)
        }
    }

    /// Gathers an engine's explanation: one entry per text.
    mutating func noteExplanation(engine: String, event: Int, _ text: String) {
        if let i = explanations.firstIndex(where: { $0.text == text }) {
            explanations[i].count += 1
            if !explanations[i].engines.contains(engine) { explanations[i].engines.append(engine) }
        } else {
            explanations.append(Explanation(engines: [engine], count: 1, firstEvent: event, text: text))
        }
    }

    /// Counts the request if it failed alike on every engine that ran it, and keeps the first
    /// examples.
    mutating func noteSharedFailure(event: Int, _ s: Statement, _ outcomes: [RequestOutcome], mark: TraceText?, examples: Int) {
        let ran = outcomes.filter(\.ran)
        guard let first = ran.first, first.ret != 0, ran.allSatisfy({ $0.ret == first.ret }) else { return }
        sharedFailureCount += 1
        if sharedFailures.count < examples {
            sharedFailures.append(SharedFailure(event: event, request: s.canonicalText, ret: first.ret, mark: mark?.string))
        }
    }

    /// Where the engines' state stops agreeing (`locked_vm`, ram page references): what later
    /// divergences may follow from. No allocation per request: the arrays are built only for a
    /// difference kept.
    mutating func noteState(
        _ hosts: [Host], followers: [(any TraceFollower)?], event: Int, differingSince: inout Int?, examples: Int
    ) {
        // An engine that crashed stopped where it was: its state says nothing more.
        func live(_ i: Int) -> Bool { followers[i]?.crashed != true }
        let first = hosts.indices.first(where: live) ?? 0
        let differs = hosts.indices.contains { i in
            live(i) && (hosts[i].charged != hosts[first].charged || hosts[i].ramRefsNet != hosts[first].ramRefsNet)
        }
        if !differs {
            differingSince = nil
        } else if differingSince == nil {
            differingSince = event
            if stateDifferences.count < examples {
                stateDifferences.append(
                    StateDifference(event: event, lockedVM: hosts.map { $0.charged }, ramRefs: hosts.map { $0.ramRefsNet }))
            }
        }
    }

    /// Keeps the request among the costliest if it is one (by its most expensive engine; the
    /// earlier request first on a tie, so the list does not depend on anything but the trace).
    mutating func noteCost(event: Int, _ s: Statement, _ estimates: [Int]) {
        let top = estimates.max() ?? 0
        if costliest.count == Replayer.costliestKept, let last = costliest.last, (last.estimates.max() ?? 0) >= top { return }
        let at = costliest.firstIndex { ($0.estimates.max() ?? 0) < top } ?? costliest.count
        costliest.insert(CostlyRequest(event: event, request: s.canonicalText, estimates: estimates), at: at)
        if costliest.count > Replayer.costliestKept { costliest.removeLast() }
    }
}

/// How far a replay has come, as it starts a statement or the teardown.
public struct ReplayProgress: Sendable {
    /// The event starting (the last event + 1 for the teardown).
    public var event: Int
    /// The statement's keyword; nil for the teardown.
    public var statement: String?
    /// Pages of the maps before this event, against the pages of every map in the trace:
    /// never past 100 %, whatever the engines walk.
    public var mappedPages: UInt64
    /// Pages of every map in the trace.
    public var totalMapPages: UInt64
    /// Events in the trace.
    public var events: Int
}

/// An engine and a violation kind.
public struct ViolationKey: Hashable, Sendable {
    /// The engine's name.
    public var engine: String
    /// The kind of violation.
    public var kind: ViolationKind
    /// The key of `kind` on `engine`.
    public init(engine: String, kind: ViolationKind) {
        self.engine = engine
        self.kind = kind
    }
}

/// Receives what the replay produces as it goes: the jsonl stream, the HTML report's map.
public protocol ReplayObserver {
    /// Each statement, before the engines apply it.
    mutating func statement(event: Int, _ s: Statement)
    /// Each request's outcomes, in engine order.
    mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome])
    /// A finding kept as an example (at most `Replayer.examples` of each kind): a divergence at
    /// the current event, or a violation at `event` (after the last event for the teardown).
    mutating func finding(event: Int, _ finding: FindingKind)
}

extension ReplayObserver {
    /// By default, nothing.
    public mutating func statement(event: Int, _ s: Statement) {}
    /// By default, nothing.
    public mutating func finding(event: Int, _ finding: FindingKind) {}
}

/// What a kept finding is.
public enum FindingKind: Hashable, Sendable {
    case divergence(DivergenceKind)
    case violation(ViolationKind)
}

/// An observer that ignores everything.
public struct NoObserver: ReplayObserver {
    /// An observer that does nothing.
    public init() {}
    /// Ignores the request.
    public mutating func request(event: Int, engines: [String], outcomes: [RequestOutcome]) {}
}

/// Replays a trace through several engines in lockstep, each on its own simulated host, and
/// compares their outcomes request by request.
public struct Replayer {
    /// The engines in lockstep, the reference first.
    public let engines: [any Engine]
    /// Called before each statement and before the teardown with how far the replay has come.
    public var progress: ((ReplayProgress) -> Void)?
    /// The most pages one statement may ask for (a map's size, a pin's or a touch's count): past
    /// it the trace is refused before the statement runs, as v4.16 would take days to walk it.
    public var maxPages: UInt64 = Replayer.defaultMaxPages
    /// 2^32 pages, 16 TiB: more than any boot maps in one request.
    public static let defaultMaxPages: UInt64 = 1 << 32
    /// Examples kept of each kind of finding (divergences per kind, violations per engine and
    /// kind, shared failures, state differences); the rest are counted.
    public var examples = 100
    /// The host's own `iommu:map` events, when given: each engine's `iommu_map()` calls are
    /// compared with them (`TraceReport.hostIOMMU`).
    public var hostIOMMU: HostIOMMUTrace?
    /// Requests kept in `costliest`.
    public static let costliestKept = 10

    /// At least one engine; each replays on a host of its own.
    public init(engines: [any Engine]) {
        precondition(!engines.isEmpty, "a replay needs at least one engine")
        self.engines = engines
    }

    /// Replays the trace at `path` after a verification pass, so nothing is replayed of a trace
    /// that turns out corrupt or truncated further on: for a binary trace its framing,
    /// checksums and trailer (decoding twice would cost a third of a replay of small requests),
    /// for a text trace every line.
    /// With a progress callback the first pass decodes everything, to learn the events and the
    /// pages the trace maps in all.
    public func replay<O: ReplayObserver>(path: String, observer: inout O) throws(TraceError) -> TraceReport {
        let reader = try TraceReader(path: path)
        var totals = (mapPages: UInt64(0), events: 0)
        if progress != nil {
            while let s = try reader.next() {
                totals.events += 1
                if case let .map(_, _, size, _) = s { totals.mapPages &+= size >> PAGE_SHIFT }
            }
            try reader.rewind()
        } else {
            _ = try reader.verifyFraming()
        }
        return try replay(reader, totals: totals, observer: &observer) { () throws(TraceError) -> String in
            guard path != "-" else {
                throw TraceError(
                    file: path, .file, .io,
                    "an isolated C engine replays the trace in a process of its own, which reads it from a file: give a file, not standard input (or --no-sandbox)"
                )
            }
            return path
        }
    }

    /// Replays statements held in memory (a reducer's candidate, a generated trace); a statement
    /// the world cannot follow is reported at its index, as line `index + 2` of its canonical
    /// text.
    public func replay<O: ReplayObserver>(statements: [Statement], name: String, observer: inout O) throws(TraceError) -> TraceReport {
        // An isolated engine's process reads a file: the statements are written to one.
        var spooled: String?
        defer { if let spooled { removeSpool(spooled) } }
        return try replay(StatementList(statements, name: name), totals: (0, statements.count), observer: &observer) {
            () throws(TraceError) -> String in
            let path = try spool(statements)
            spooled = path
            return path
        }
    }

    func replay<O: ReplayObserver, R: StatementSource>(
        _ reader: R, totals: (mapPages: UInt64, events: Int), observer: inout O,
        tracePath: () throws(TraceError) -> String
    ) throws(TraceError) -> TraceReport {
        let hosts = engines.map { Host(engine: $0) }
        // Resolved once: the per-statement path asks an array, not a dynamic cast.
        let followers = hosts.map { $0.backend as? TraceFollower }
        if followers.contains(where: { $0 != nil }) {
            let path = try tracePath()
            for f in followers { try f?.start(trace: path) }
        }
        let names = engines.map(\.name)
        var report = TraceReport(
            trace: reader.file, form: reader.form, engines: names,
            summaries: engines.map { EngineSummary(engine: $0.name, lockedVMCounter: $0.lockedVMCounter.rawValue) })
        // Spelt out only for a kept finding.
        var mark: TraceText?
        var event = 0
        var outcomes: [RequestOutcome] = []
        outcomes.reserveCapacity(hosts.count)
        var results = [Result<RequestOutcome?, WorldError>](repeating: .success(nil), count: hosts.count)
        var effects = [Differ.Effect](repeating: Differ.Effect(lockedVM: 0, ramRefs: 0), count: hosts.count)
        var refsBefore = [Int64](repeating: 0, count: hosts.count)
        var lockedBefore = [Int64](repeating: 0, count: hosts.count)
        var estimateBefore = [Int](repeating: 0, count: hosts.count)
        var estimates = [Int](repeating: 0, count: hosts.count)
        /// The event since which the engines' state differs, if it does.
        var differingSince: Int?
        let examples = self.examples
        func collectViolations(_ i: Int) {
            for v in hosts[i].takeViolations() {
                let key = ViolationKey(engine: names[i], kind: v.violation.kind)
                let n = report.violationCounts[key, default: 0]
                report.violationCounts[key] = n + 1
                if n < examples {
                    report.violations.append(EngineViolation(engine: names[i], event: v.event, violation: v.violation))
                    observer.finding(event: v.event, .violation(v.violation.kind))
                }
            }
        }

        var hostCheck = hostIOMMU.map { HostIOMMUCheck($0, engines: names) }
        var mappedPages: UInt64 = 0
        while let s = try reader.next() {
            event += 1
            if let progress {
                progress(
                    ReplayProgress(
                        event: event, statement: s.keyword, mappedPages: mappedPages, totalMapPages: totals.mapPages, events: totals.events)
                )
                if case let .map(_, _, size, _) = s { mappedPages &+= size >> PAGE_SHIFT }
            }
            if case .mark(let text) = s { mark = text }
            observer.statement(event: event, s)
            try checkBudget(s, event: event, reader)
            outcomes.removeAll(keepingCapacity: true)
            for (i, host) in hosts.enumerated() {
                host.event = event
                refsBefore[i] = host.ramRefsNet
                lockedBefore[i] = host.charged
                if s.isRequest { estimateBefore[i] = CostModel.estimate(host.counters) }
            }
            Self.applyAll(s, to: hosts, followers: followers, into: &results)
            for i in hosts.indices {
                switch results[i] {
                case .success(let o):
                    if let o { outcomes.append(o) }
                case .failure(let error):
                    throw TraceError(
                        file: reader.file, reader.lastLocation, .impossible,
                        "event \(event) (\(s.keyword)) cannot happen: \(error.message)")
                }
                collectViolations(i)
            }
            guard s.isRequest else { continue }
            for i in hosts.indices {
                report.summaries[i].pinnedVMPeak = max(report.summaries[i].pinnedVMPeak, hosts[i].mm.pinned_vm)
            }
            if case let .map(_, vaddr, _, _) = s {
                for i in hosts.indices {
                    if let text = engines[i].explain(map: outcomes[i], on: hosts[i], vaddr: VAddr(vaddr)) {
                        report.noteExplanation(engine: names[i], event: event, text)
                    }
                }
            }
            report.noteOutcomes(outcomes)
            hostCheck?.note(event: event, outcomes)
            observer.request(event: event, engines: names, outcomes: outcomes)
            for i in hosts.indices { estimates[i] = CostModel.estimate(hosts[i].counters) - estimateBefore[i] }
            report.noteCost(event: event, s, estimates)
            report.noteSharedFailure(event: event, s, outcomes, mark: mark, examples: examples)
            guard hosts.count > 1 else { continue }
            // Each engine's own effect of this request, so one early difference in state does not
            // make every later request diverge.
            for i in hosts.indices {
                effects[i] = Differ.Effect(lockedVM: outcomes[i].lockedVM &- lockedBefore[i], ramRefs: hosts[i].ramRefsNet &- refsBefore[i])
            }
            // The kind first; the line saying how only for a divergence kept as an example.
            if let found = Differ.compare(outcomes, effects: effects, engines: names, describe: false) {
                let k = DivergenceKind.allCases.firstIndex(of: found.kind) ?? 0
                report.divergenceCounts[k] += 1
                if report.divergenceCounts[k] <= examples,
                    let d = Differ.compare(outcomes, effects: effects, engines: names)
                {
                    report.divergences.append(
                        Divergence(
                            event: event, request: s.canonicalText, op: outcomes[0].op, kind: d.kind, mark: mark?.string,
                            detail: d.detail, outcomes: outcomes, estimates: estimates, since: differingSince))
                    observer.finding(event: event, .divergence(d.kind))
                }
            }
            report.noteState(hosts, followers: followers, event: event, differingSince: &differingSince, examples: examples)
        }
        report.events = event
        hostCheck?.finish()
        report.hostIOMMU = hostCheck?.matches

        progress?(
            ReplayProgress(
                event: event + 1, statement: nil, mappedPages: mappedPages, totalMapPages: totals.mapPages, events: totals.events))
        // What is still mapped is torn down as the process exits; findings are event N+1. The
        // hosts share nothing, so they tear down at once.
        for (i, host) in hosts.enumerated() {
            report.summaries[i].lockedVMFinal = host.charged
            host.event = event + 1
        }
        let disjoint = DisjointHosts(hosts: hosts, followers: followers)
        _ = parallelMap(hosts.count, jobs: hosts.count) { i in
            let host = disjoint.hosts[i]
            if let follower = disjoint.followers[i] { follower.finish(on: host) } else { host.teardown() }
        }
        for (i, host) in hosts.enumerated() {
            collectViolations(i)
            report.summaries[i].counters = host.counters
        }
        report.violations.sort { ($0.event, names.firstIndex(of: $0.engine) ?? 0) < ($1.event, names.firstIndex(of: $1.engine) ?? 0) }
        return report
    }

    /// Refuses a statement that asks for more pages than `maxPages`, before it runs.
    func checkBudget<R: StatementSource>(_ s: Statement, event: Int, _ reader: R) throws(TraceError) {
        guard let pages = s.pagesAsked, pages > maxPages else { return }
        let bytes = (maxPages &<< PAGE_SHIFT) >> PAGE_SHIFT == maxPages ? maxPages << PAGE_SHIFT : UInt64.max
        throw TraceError(
            file: reader.file, reader.lastLocation, .tooLarge,
            "event \(event) (\(s.keyword)) asks for \(pages) pages, over the budget of \(maxPages) "
                + "(\(humanBytes(bytes))) per statement: --max-pages raises it")
    }

    /// Requests at least this large run on all engines at once: the hosts share nothing, so
    /// the results are the same as one after the other, only sooner.
    static let parallelBytes: UInt64 = 256 << 20

    /// Applies a statement to every host, in parallel when it is a large request; `results`
    /// has one slot per host and is reused from statement to statement.
    static func applyAll(
        _ s: Statement, to hosts: [Host], followers: [(any TraceFollower)?], into results: inout [Result<RequestOutcome?, WorldError>]
    ) {
        let heavy: Bool
        switch s {
        case .map(_, _, let size, _), .unmap(_, let size): heavy = size >= parallelBytes
        default: heavy = false
        }
        guard heavy && hosts.count > 1 else {
            for i in hosts.indices { results[i] = Result { () throws(WorldError) in try step(s, hosts[i], followers[i]) } }
            return
        }
        let disjoint = DisjointHosts(hosts: hosts, followers: followers)
        results = parallelMap(hosts.count, jobs: hosts.count) { i in
            Result { () throws(WorldError) in try step(s, disjoint.hosts[i], disjoint.followers[i]) }
        }
    }

    /// One statement on one host: answered by the engine's own process when it has one.
    static func step(_ s: Statement, _ h: Host, _ follower: (any TraceFollower)?) throws(WorldError) -> RequestOutcome? {
        if let follower { return try follower.follow(s, event: h.event, on: h) }
        return try apply(s, to: h)
    }

    /// Applies one statement to a host; requests return their outcome.
    public static func apply(_ s: Statement, to h: Host) throws(WorldError) -> RequestOutcome? {
        switch s {
        case .pageShift, .mark:
            return nil
        case .memlock(let bytes):
            h.memlock = bytes
        case .capIpcLock(let yes):
            h.cap_ipc_lock = yes
        case .lockedVM(let pages):
            h.setLockedVM(Int64(pages))
        case .userLockedVM(let pages):
            h.setUserLockedVM(Int64(pages))
        case .disableHugepages(let yes):
            h.disable_hugepages = yes
        case .thp(let t):
            h.thp = t
        case .dmaEntryLimit(let n):
            h.iommu.dma_avail = Int(clamping: n)
        case let .pfns(kind, start, count):
            h.phys.declare(kind, start: PFN(start), count: count)
        case .zeroPage(let pfn):
            h.phys.zeroPfn = PFN(pfn)
        case let .pool(start, count):
            h.phys.addPool(start: PFN(start), count: count)
        case .vma(let v):
            h.mm.mmap(v.vma)
        case let .munmap(start, end):
            h.mm.munmap(VAddr(start), VAddr(end))
        case let .pte(vaddr, count, pfn, readOnly, leaf):
            try h.setPtes(VAddr(vaddr), count: count, pfn: pfn.map { PFN($0) }, writable: !readOnly, leafShift: leaf.rawValue)
        case let .touch(vaddr, count, write):
            h.touch(VAddr(vaddr), count: count, write: write)
        case let .map(iova, vaddr, size, access):
            return h.backend.map(IOVA(iova), VAddr(vaddr), size, Prot(access))
        case let .unmap(iova, size):
            return h.backend.unmap(IOVA(iova), size)
        case let .unmapAll(iova, size):
            return h.backend.unmapAll(IOVA(iova), size)
        case let .pin(iova, count, access):
            return h.backend.pin(IOVA(iova), Int(clamping: count), Prot(access))
        case let .unpin(iova, count):
            return h.backend.unpin(IOVA(iova), Int(clamping: count))
        }
        return nil
    }
}

/// Where the replay loop takes its statements from.
protocol StatementSource {
    var file: String { get }
    var form: TraceForm { get }
    var lastLocation: TraceLocation { get }
    func next() throws(TraceError) -> Statement?
}

extension TraceReader: StatementSource {}

/// Statements in memory, as if read from their canonical text.
final class StatementList: StatementSource {
    let statements: [Statement]
    let file: String
    var form: TraceForm { .text }
    private var index = 0
    private var rules = TraceRules()
    init(_ statements: [Statement], name: String) {
        self.statements = statements
        file = name
    }
    var lastLocation: TraceLocation { .line(index + 1) }
    func next() throws(TraceError) -> Statement? {
        guard index < statements.count else { return nil }
        let s = statements[index]
        index += 1
        if let problem = rules.problem(s) { throw TraceError(file: file, lastLocation, .invalid, problem) }
        return s
    }
}

extension Prot {
    init(_ access: Access) {
        self = []
        if access.contains(.read) { insert(.IOMMU_READ) }
        if access.contains(.write) { insert(.IOMMU_WRITE) }
    }
}

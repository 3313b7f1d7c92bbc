import Replay
import VFIOModel

/// What a reduced trace must still show (`reduce --keep WHAT`): any finding, a divergence of
/// one kind, or a violation of one kind, optionally on one engine.
public enum Finding: Hashable, Sendable, CustomStringConvertible {
    /// Any divergence or violation.
    case any
    /// A divergence of this kind; with an engine, one where that engine's outcome differs.
    case divergence(DivergenceKind, engine: String?)
    /// A violation of this kind (`foreign-pfn`, `refcount-underflow`, `leak`), on the engine
    /// if one is named.
    case violation(ViolationKind, engine: String?)

    /// Parses `any`, `KIND[@ENGINE]`, `violation:KIND[@ENGINE]` or `crash[@ENGINE]`; nil if it is
    /// none of them.
    public init?(_ text: String) {
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let what = parts.first, parts.count == 1 || !parts[1].isEmpty else { return nil }
        let engine = parts.count == 2 ? parts[1] : nil
        if what == "any" && engine == nil {
            self = .any
        } else if let kind = DivergenceKind(rawValue: what) {
            self = .divergence(kind, engine: engine)
        } else if what.hasPrefix("violation:"), let kind = ViolationKind(rawValue: String(what.dropFirst(10))) {
            self = .violation(kind, engine: engine)
        } else if what == "crash" {
            // A crash is the one violation that is not the kernel's: its own short spelling.
            self = .violation(.crash, engine: engine)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case let .divergence(kind, engine): kind.rawValue + (engine.map { "@" + $0 } ?? "")
        case let .violation(kind, engine): "violation:" + kind.rawValue + (engine.map { "@" + $0 } ?? "")
        }
    }

    /// The engine named, if any.
    public var engine: String? {
        switch self {
        case .any: nil
        case .divergence(_, let e), .violation(_, let e): e
        }
    }

    /// Whether a replay's report shows this.
    public func isShown(by report: TraceReport) -> Bool {
        switch self {
        case .any:
            return !report.isClean
        case let .divergence(kind, engine):
            return report.divergences.contains { d in
                guard d.kind == kind else { return false }
                guard let engine, let i = report.engines.firstIndex(of: engine) else { return true }
                return d.outcomes.indices.contains { $0 != i && d.outcomes[$0] != d.outcomes[i] }
            }
        case let .violation(kind, nil):
            return report.violations.contains { $0.violation.kind == kind }
        case let .violation(kind, engine?):
            return report.violations.contains { $0.engine == engine && $0.violation.kind == kind && !Self.sharedByAll($0, report) }
        }
    }

    /// Whether every engine of the report has this violation's kind at its event (then it says
    /// nothing about one engine against another). With one engine, never.
    static func sharedByAll(_ v: EngineViolation, _ report: TraceReport) -> Bool {
        // An engine that crashed before this event (or at it) cannot show it: it neither shares
        // nor contradicts it.
        let stopped = Set(report.violations.filter { $0.violation.kind == .crash && $0.event <= v.event }.map(\.engine))
        return report.engines.count > 1
            && report.engines.allSatisfy { e in
                (v.violation.kind != .crash && stopped.contains(e))
                    || report.violations.contains { $0.engine == e && $0.event == v.event && $0.violation.kind == v.violation.kind }
            }
    }

    /// Everything a report shows, once each, in the order of the events: each divergence kind,
    /// and each violation kind (with its engine unless every engine has it; left out then when
    /// `differential`).
    public static func all(in report: TraceReport, differential: Bool = false) -> [Finding] {
        var events: [(Int, Int, Finding)] = report.divergences.map { ($0.event, 0, .divergence($0.kind, engine: nil)) }
        for v in report.violations {
            let shared = sharedByAll(v, report)
            if differential && shared { continue }
            events.append((v.event, 1, .violation(v.violation.kind, engine: shared || report.engines.count == 1 ? nil : v.engine)))
        }
        var seen = Set<Finding>()
        return events.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2).filter { seen.insert($0).inserted }
    }

    /// The first thing a report shows: the earliest divergence or violation (a divergence first
    /// at the same event). A violation on some engines only is kept with its engine; one that
    /// every engine has is kept without, or (`differential`, as `fuzz` looks for differences)
    /// not at all.
    public static func first(in report: TraceReport, differential: Bool = false) -> Finding? {
        all(in: report, differential: differential).first
    }

}

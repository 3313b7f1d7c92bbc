import Replay
import TraceFormat
import VFIOEngines
import VFIOModel

/// `fuzz`: random traces from one seed through the engines; every finding is reduced and
/// kept once per thing it shows.
public struct Fuzzer: Sendable {
    /// The engines each trace runs through.
    public let engines: [any Engine]
    /// The seed of trace 0; trace i uses its own stream from it.
    public let seed: UInt64
    /// Traces run at once.
    public var jobs: Int

    /// A fuzzer over `engines`.
    public init(engines: [any Engine], seed: UInt64, jobs: Int) {
        self.engines = engines
        self.seed = seed
        self.jobs = jobs
    }

    /// One finding: what it shows, where it came from, its reproducer.
    public struct Found: Sendable {
        /// What was found.
        public var finding: Finding
        /// The index of the trace that showed it first.
        public var index: UInt64
        /// The swarm features that trace was made with.
        public var features: [Swarm.Feature]
        /// The trace, reduced.
        public var reproducer: [Statement]
        /// Traces that showed the same thing, this one included.
        public var count = 1
    }

    /// What trace `index` shows (differences between the engines only, when there are
    /// several), with its features and statements.
    public func check(index: UInt64) -> (findings: [Finding], features: [Swarm.Feature], statements: [Statement]) {
        let (features, statements) = Swarm.trace(seed: seed, index: index)
        var none = NoObserver()
        guard let report = try? Replayer(engines: engines).replay(statements: statements, name: "fuzz", observer: &none)
        else { return ([], features, statements) }
        return (Finding.all(in: report, differential: engines.count > 1), features, statements)
    }

    /// Adds what trace `index` shows to `found`, reducing each kind the first time it is seen.
    public func run(index: UInt64, into found: inout [Found]) {
        let (findings, features, statements) = check(index: index)
        for f in findings {
            if let i = found.firstIndex(where: { $0.finding == f }) {
                found[i].count += 1
                continue
            }
            let reduced = Reducer(engines: engines, keep: f, jobs: jobs).reduce(statements)
            found.append(Found(finding: f, index: index, features: features, reproducer: reduced))
        }
    }

    /// The reproducer's file name: `seed-S-INDEX-KIND.txt`.
    public func fileName(_ f: Found) -> String {
        let kind = f.finding.description.map { $0 == ":" || $0 == "@" ? "-" : $0 }
        return "seed-\(seed)-\(f.index)-\(String(kind)).txt"
    }

    /// The reproducer with a header naming the seed, the index, the features and the kind.
    public func render(_ f: Found) -> String {
        Reducer.reproducer(
            f.reproducer,
            comments: [
                "pinreplay fuzz --seed \(seed): trace \(f.index) shows \(f.finding) on \(engines.map(\.name).joined(separator: ","))",
                "features: \(f.features.map(\.rawValue).joined(separator: " "))",
            ])
    }
}

import TraceFormat
import VFIOModel

/// The host kernel's own `iommu:map` events (ftrace, `events/iommu/map/enable`) recorded
/// during the same boot as a trace: what the engines' `iommu_map()` calls should reproduce.
public struct HostIOMMUTrace: Sendable {
    /// One `map: IOMMU: iova=0x.. [- 0x..] paddr=0x.. size=N` event.
    public struct Map: Equatable, Sendable {
        /// Where the device sees it.
        public var iova: UInt64
        /// The physical address mapped.
        public var paddr: UInt64
        /// Bytes.
        public var size: UInt64
        /// A map from its fields.
        public init(iova: UInt64, paddr: UInt64, size: UInt64) {
            self.iova = iova
            self.paddr = paddr
            self.size = size
        }
    }

    /// The maps, in order.
    public var maps: [Map] = []
    /// `unmap: IOMMU:` events seen (not compared).
    public var unmaps = 0

    /// Parses ftrace output as pasted (wrapped lines, quoting, other events in between); an
    /// iommu map event that does not read is an error naming the file and line.
    public init(_ text: String, file: String) throws(TraceError) {
        for r in PastedLog.records(text, prefixes: ["map: IOMMU:", "unmap: IOMMU:"]) {
            if r.event.hasPrefix("unmap:") {
                unmaps += 1
                continue
            }
            var fields: [Substring: Substring] = [:]
            for w in r.event.split(separator: " ") {
                let kv = w.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { fields[kv[0]] = kv[1] }
            }
            func number(_ k: Substring) throws(TraceError) -> UInt64 {
                guard let v = fields[k], let n = v.hasPrefix("0x") ? UInt64(v.dropFirst(2), radix: 16) : UInt64(v) else {
                    throw TraceError(file: file, .line(r.line), .syntax, "iommu map event: no \(k)=: '\(r.text.prefix(100))'")
                }
                return n
            }
            maps.append(Map(iova: try number("iova"), paddr: try number("paddr"), size: try number("size")))
        }
        guard !maps.isEmpty else {
            throw TraceError(
                file: file, .file, .syntax, "no 'map: IOMMU: iova=... paddr=... size=...' event: not ftrace output of the iommu events")
        }
    }
}

/// How one engine's `iommu_map()` calls compare with the host's, in order.
public struct HostIOMMUMatch: Sendable {
    /// The engine.
    public var engine: String
    /// Host calls matched from the first until the first difference.
    public var matched = 0
    /// The host's calls.
    public var hostCalls: Int
    /// The engine's calls.
    public var engineCalls = 0
    /// The first difference, in words; nil when every call matches.
    public var firstDifference: String?

    /// "v4.16 matches 5 of 5 host iommu_map calls", or where they part.
    public var summary: String {
        let head = "\(engine) matches \(matched) of \(hostCalls) host iommu_map calls"
        return firstDifference.map { "\(head); first difference: \($0)" } ?? head
    }
}

/// Compares each engine's `iommu_map()` calls with the host's as the replay goes: a running
/// index per engine, nothing kept but the first difference.
struct HostIOMMUCheck {
    let host: [HostIOMMUTrace.Map]
    var matches: [HostIOMMUMatch]
    var done: [Bool]

    init(_ trace: HostIOMMUTrace, engines: [String]) {
        host = trace.maps
        matches = engines.map { HostIOMMUMatch(engine: $0, hostCalls: trace.maps.count) }
        done = Array(repeating: false, count: engines.count)
    }

    static func describe(_ m: HostIOMMUTrace.Map) -> String {
        "iova \(hex(m.iova)) paddr \(hex(m.paddr)) size \(hex(m.size))"
    }

    mutating func note(event: Int, _ outcomes: [RequestOutcome]) {
        for (i, o) in outcomes.enumerated() {
            guard case .map(let ret, let chunks, _) = o else { continue }
            for c in chunks {
                let mine = HostIOMMUTrace.Map(iova: c.iova.rawValue, paddr: c.pfn.rawValue << PAGE_SHIFT, size: c.npage << PAGE_SHIFT)
                let k = matches[i].engineCalls
                matches[i].engineCalls += 1
                guard !done[i] else { continue }
                if k < host.count, host[k] == mine {
                    matches[i].matched += 1
                    continue
                }
                done[i] = true
                let theirs = k < host.count ? "host call \(k + 1) is \(Self.describe(host[k]))" : "the host made \(host.count) calls"
                matches[i].firstDifference = "event \(event): its call \(k + 1) is \(Self.describe(mine)); \(theirs)"
            }
            if chunks.isEmpty, ret < 0, !done[i], matches[i].engineCalls < host.count {
                // A map the host made that this engine refused.
                let k = matches[i].engineCalls
                done[i] = true
                matches[i].firstDifference =
                    "event \(event): the map fails \(retName(ret)) and makes no call where host call \(k + 1) is \(Self.describe(host[k]))"
            }
        }
    }

    mutating func finish() {
        for i in matches.indices where !done[i] && matches[i].matched < host.count {
            matches[i].firstDifference =
                "the engine made \(matches[i].engineCalls) calls; host call \(matches[i].matched + 1) is \(Self.describe(host[matches[i].matched]))"
        }
    }
}

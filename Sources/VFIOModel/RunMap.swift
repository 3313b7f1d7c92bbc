/// A value stored over a run of consecutive keys (pages or frames).
///
/// A run that starts with value `v` holds `v.advanced(by: i)` at its `i`-th key: page-table and
/// IOMMU entries advance their frame number, plain values stay the same. Two adjacent runs merge
/// when the right one continues the left one.
public protocol RunValue: Equatable {
    /// The value `offset` keys into a run that starts with `self`.
    func advanced(by offset: UInt64) -> Self
}

/// A key range `[start, start + count)` holding `value` at `start`.
public struct Run<Value: RunValue>: Equatable {
    public var start: UInt64
    public var count: UInt64
    public var value: Value
    @inlinable public var end: UInt64 { start &+ count }
    @inlinable public init(start: UInt64, count: UInt64, value: Value) {
        self.start = start
        self.count = count
        self.value = value
    }
}

/// A run-length map from 64-bit keys to values: memory grows with the number of extents, never
/// with the number of keys they cover (a 1 TiB mapping of 2^28 pages can be one run).
///
/// Runs are kept sorted, non-overlapping, non-empty and maximally merged. Keys must stay below
/// 2^63 so that `end` never wraps; page and frame numbers are at most 2^52.
public struct RunMap<Value: RunValue> {
    public private(set) var runs: [Run<Value>] = []

    public init() {}

    /// Number of stored runs (extents).
    public var runCount: Int { runs.count }
    public var isEmpty: Bool { runs.isEmpty }

    /// Index of the first run whose end lies above `key` (the run holding `key`, or the first
    /// run after it).
    @inlinable
    func firstIndex(endingAbove key: UInt64) -> Int {
        var lo = 0
        var hi = runs.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if runs[mid].end <= key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The value at `key`, or nil when no run covers it.
    @inlinable
    public func value(at key: UInt64) -> Value? {
        let i = firstIndex(endingAbove: key)
        guard i < runs.count, runs[i].start <= key else { return nil }
        return runs[i].value.advanced(by: key - runs[i].start)
    }

    /// The run covering `key`, cut to start at `key`: its value there and how many keys on it
    /// extends. Nil when no run covers `key`.
    @inlinable
    public func run(at key: UInt64) -> Run<Value>? {
        let i = firstIndex(endingAbove: key)
        guard i < runs.count, runs[i].start <= key else { return nil }
        let r = runs[i]
        return Run(start: key, count: r.end - key, value: r.value.advanced(by: key - r.start))
    }

    /// The first key at or above `key` covered by a run, if any.
    public func nextCovered(from key: UInt64) -> UInt64? {
        let i = firstIndex(endingAbove: key)
        guard i < runs.count else { return nil }
        return max(runs[i].start, key)
    }

    /// Calls `body` for every piece of `[start, start + count)` in ascending order: runs cut to
    /// the range, and the gaps between them with a nil value.
    public func forEachSegment(
        from start: UInt64, count: UInt64, _ body: (_ start: UInt64, _ count: UInt64, _ value: Value?) -> Void
    ) {
        let end = start + count
        var key = start
        var i = firstIndex(endingAbove: start)
        while key < end {
            if i < runs.count, runs[i].start < end {
                let r = runs[i]
                if r.start > key {
                    body(key, r.start - key, nil)
                    key = r.start
                }
                let segEnd = min(r.end, end)
                body(key, segEnd - key, r.value.advanced(by: key - r.start))
                key = segEnd
                i += 1
            } else {
                body(key, end - key, nil)
                key = end
            }
        }
    }

    /// Replaces whatever `[start, start + count)` held with `value` (nil clears the range).
    public mutating func assign(_ start: UInt64, _ count: UInt64, _ value: Value?) {
        guard count > 0 else { return }
        var pieces: [Run<Value>] = []
        if let value { pieces.append(Run(start: start, count: count, value: value)) }
        replace(start, count, with: pieces)
    }

    /// Rewrites every piece of `[start, start + count)`, runs and gaps alike, through `transform`
    /// (nil in, nil out means nothing there).
    public mutating func update(_ start: UInt64, _ count: UInt64, _ transform: (Value?) -> Value?) {
        guard count > 0 else { return }
        var pieces: [Run<Value>] = []
        forEachSegment(from: start, count: count) { s, n, v in
            if let nv = transform(v) { pieces.append(Run(start: s, count: n, value: nv)) }
        }
        replace(start, count, with: pieces)
    }

    /// Replaces the range with `pieces` (sorted, inside the range), keeping the parts of the
    /// boundary runs that lie outside it and merging at every seam.
    private mutating func replace(_ start: UInt64, _ count: UInt64, with pieces: [Run<Value>]) {
        let end = start + count
        let lo = firstIndex(endingAbove: start)
        var hi = lo
        while hi < runs.count, runs[hi].start < end { hi += 1 }
        var out: [Run<Value>] = []
        out.reserveCapacity(pieces.count + 4)
        // Neighbours outside the range take part in merging so the map stays maximally merged.
        var from = lo
        var to = hi
        if lo > 0, runs[lo - 1].end == start {
            from = lo - 1
            out.append(runs[from])
        }
        if lo < hi, runs[lo].start < start {
            let r = runs[lo]
            out.append(Run(start: r.start, count: start - r.start, value: r.value))
        }
        for p in pieces { Self.appendMerging(&out, p) }
        if hi > lo, runs[hi - 1].end > end {
            let r = runs[hi - 1]
            Self.appendMerging(
                &out, Run(start: end, count: r.end - end, value: r.value.advanced(by: end - r.start)))
        }
        if hi < runs.count {
            Self.appendMerging(&out, runs[hi])
            to = hi + 1
        }
        runs.replaceSubrange(from..<to, with: out)
    }

    @inline(__always)
    private static func appendMerging(_ out: inout [Run<Value>], _ r: Run<Value>) {
        if let last = out.last, last.end == r.start, last.value.advanced(by: last.count) == r.value {
            out[out.count - 1].count += r.count
        } else {
            out.append(r)
        }
    }
}

/// A plain value that does not change along a run.
public protocol ConstantRunValue: RunValue {}
extension ConstantRunValue {
    @inlinable public func advanced(by offset: UInt64) -> Self { self }
}

extension Int64: ConstantRunValue {}
extension Bool: ConstantRunValue {}

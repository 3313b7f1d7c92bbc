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
    // Inlinable throughout, so that every caller (in other files and modules too) gets a
    // specialized copy: an unspecialized generic costs a metadata lookup per page.
    @usableFromInline var storage: [Run<Value>] = []
    /// Where the last lookup landed. Only a hint, checked before use, so copies of the map may
    /// share it harmlessly: walks touch key after key, and the answer is mostly this run or
    /// the next, which saves the binary search.
    @usableFromInline let hint = Hint()

    @usableFromInline final class Hint {
        @usableFromInline var index = 0
        @usableFromInline init() {}
    }

    /// The runs, sorted, disjoint, maximally merged.
    @inlinable public var runs: [Run<Value>] { storage }

    @inlinable public init() {}

    /// Number of stored storage (extents).
    @inlinable public var runCount: Int { storage.count }
    @inlinable public var isEmpty: Bool { storage.isEmpty }

    /// Index of the first run whose end lies above `key` (the run holding `key`, or the first
    /// run after it).
    @inlinable func firstIndex(endingAbove key: UInt64) -> Int {
        let n = storage.count
        // i answers when the run before it ends at or below key and run i (if any) above it:
        // try the hinted run, then the next one.
        var i = hint.index
        if i <= n && (i == 0 || storage[i - 1].end <= key) {
            if i == n || storage[i].end > key { return i }
            i += 1
            if i == n || storage[i].end > key {
                hint.index = i
                return i
            }
        }
        var lo = 0
        var hi = n
        while lo < hi {
            let mid = (lo + hi) >> 1
            if storage[mid].end <= key { lo = mid + 1 } else { hi = mid }
        }
        hint.index = lo
        return lo
    }

    /// The value at `key`, or nil when no run covers it.
    @inlinable public func value(at key: UInt64) -> Value? {
        let i = firstIndex(endingAbove: key)
        guard i < storage.count, storage[i].start <= key else { return nil }
        return storage[i].value.advanced(by: key - storage[i].start)
    }

    /// The run covering `key`, cut to start at `key`: its value there and how many keys on it
    /// extends. Nil when no run covers `key`.
    @inlinable public func run(at key: UInt64) -> Run<Value>? {
        let i = firstIndex(endingAbove: key)
        guard i < storage.count, storage[i].start <= key else { return nil }
        let r = storage[i]
        return Run(start: key, count: r.end - key, value: r.value.advanced(by: key - r.start))
    }

    /// The first key at or above `key` covered by a run, if any.
    @inlinable public func nextCovered(from key: UInt64) -> UInt64? {
        let i = firstIndex(endingAbove: key)
        guard i < storage.count else { return nil }
        return max(storage[i].start, key)
    }

    /// Calls `body` for every piece of `[start, start + count)` in ascending order: storage cut to
    /// the range, and the gaps between them with a nil value.
    @inlinable public func forEachSegment(
        from start: UInt64, count: UInt64, _ body: (_ start: UInt64, _ count: UInt64, _ value: Value?) -> Void
    ) {
        let end = start + count
        var key = start
        var i = firstIndex(endingAbove: start)
        while key < end {
            if i < storage.count, storage[i].start < end {
                let r = storage[i]
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
    ///
    /// Works in place: cutting the storage at the range's edges, dropping those inside, and
    /// merging the new run with its neighbours. No temporary storage, so the page-at-a-time
    /// updates of a walk cost a binary search and at most one insertion.
    @inlinable public mutating func assign(_ start: UInt64, _ count: UInt64, _ value: Value?) {
        guard count > 0 else { return }
        let end = start + count
        var lo = firstIndex(endingAbove: start)
        if lo < storage.count, storage[lo].start < start {
            let r = storage[lo]
            if r.end > end {
                // Strictly inside one run: unchanged, or split it in three (two without a value).
                let here = r.value.advanced(by: start - r.start)
                if here == value { return }
                storage[lo].count = start - r.start
                storage.insert(Run(start: end, count: r.end - end, value: r.value.advanced(by: end - r.start)), at: lo + 1)
                if let value { storage.insert(Run(start: start, count: count, value: value), at: lo + 1) }
                return
            }
            storage[lo].count = start - r.start
            lo += 1
        }
        var hi = lo
        while hi < storage.count, storage[hi].end <= end { hi += 1 }
        if hi < storage.count, storage[hi].start < end {
            let r = storage[hi]
            storage[hi] = Run(start: end, count: r.end - end, value: r.value.advanced(by: end - r.start))
        }
        guard let value else {
            if hi > lo { storage.removeSubrange(lo..<hi) }
            return
        }
        let new = Run(start: start, count: count, value: value)
        if hi > lo {
            storage[lo] = new
            storage.removeSubrange(lo + 1..<hi)
            mergeAround(lo)
        } else if lo > 0, Self.continues(storage[lo - 1], new) {
            // Growing the run to the left, as a sequential walk does: no insertion.
            storage[lo - 1].count += count
            mergeAround(lo - 1)
        } else if lo < storage.count, Self.continues(new, storage[lo]) {
            storage[lo] = Run(start: start, count: count + storage[lo].count, value: value)
        } else {
            storage.insert(new, at: lo)
        }
    }

    /// Merges run `i` with its right and left neighbours where one continues the other.
    @inlinable mutating func mergeAround(_ i: Int) {
        if i + 1 < storage.count, Self.continues(storage[i], storage[i + 1]) {
            storage[i].count += storage[i + 1].count
            storage.remove(at: i + 1)
        }
        if i > 0, Self.continues(storage[i - 1], storage[i]) {
            storage[i - 1].count += storage[i].count
            storage.remove(at: i)
        }
    }

    @inline(__always)
    @inlinable static func continues(_ a: Run<Value>, _ b: Run<Value>) -> Bool {
        a.end == b.start && a.value.advanced(by: a.count) == b.value
    }

    /// One key: the walk's common case. A run grown by one key at its end, or shrunk by one
    /// at either end, is changed in place after a single lookup; anything else goes through
    /// `assign`.
    @inlinable mutating func updateOne(_ key: UInt64, _ transform: (Value?) -> Value?) {
        let n = storage.count
        let i = firstIndex(endingAbove: key)
        let inRun = i < n && storage[i].start <= key
        let old = inRun ? storage[i].value.advanced(by: key - storage[i].start) : nil
        let new = transform(old)
        if new == old { return }
        if !inRun, let new, i > 0, storage[i - 1].end == key,
            storage[i - 1].value.advanced(by: storage[i - 1].count) == new
        {
            storage[i - 1].count += 1
            if i < n, Self.continues(storage[i - 1], storage[i]) {
                storage[i - 1].count += storage[i].count
                storage.remove(at: i)
            }
            return
        }
        if inRun, new == nil {
            if storage[i].count == 1 {
                storage.remove(at: i)
                return
            }
            if key == storage[i].start {
                storage[i] = Run(start: key + 1, count: storage[i].count - 1, value: storage[i].value.advanced(by: 1))
                return
            }
            if key == storage[i].end - 1 {
                storage[i].count -= 1
                return
            }
        }
        assign(key, 1, new)
    }

    /// Rewrites every piece of `[start, start + count)`, runs and gaps alike, through `transform`
    /// (nil in, nil out means nothing there).
    @inlinable public mutating func update(_ start: UInt64, _ count: UInt64, _ transform: (Value?) -> Value?) {
        guard count > 0 else { return }
        if count == 1 {
            updateOne(start, transform)
            return
        }
        var pieces: [(start: UInt64, count: UInt64, value: Value?)] = []
        forEachSegment(from: start, count: count) { s, n, v in pieces.append((s, n, transform(v))) }
        for p in pieces { assign(p.start, p.count, p.value) }
    }
}

/// A plain value that does not change along a run.
public protocol ConstantRunValue: RunValue {}
extension ConstantRunValue {
    @inlinable public func advanced(by offset: UInt64) -> Self { self }
}

extension Int64: ConstantRunValue {}

extension Bool: ConstantRunValue {}

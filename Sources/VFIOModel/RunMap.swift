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
    /// First key of the run.
    public var start: UInt64
    /// Keys in the run.
    public var count: UInt64
    /// The value at `start`; later keys hold it advanced by their offset.
    public var value: Value
    /// The key just past the run.
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
/// 2^63 so that `end` never wraps; page and frame numbers are at most 2^52. The runs live in a
/// `Chunked` list, so a lookup or an update costs O(log n) in the number of runs whatever the
/// order they come in.
public struct RunMap<Value: RunValue> {
    // Inlinable throughout, so that every caller (in other files and modules too) gets a
    // specialized copy: an unspecialized generic costs a metadata lookup per page.
    @usableFromInline typealias Storage = Chunked<Run<Value>>
    @usableFromInline typealias Index = Storage.Index
    @usableFromInline var storage = Storage()
    /// Where the last lookup landed. Only a hint, checked before use, so copies of the map may
    /// share it harmlessly: walks touch key after key, and the answer is mostly this run or
    /// the next, which saves the binary search.
    @usableFromInline let hint = Hint()

    @usableFromInline final class Hint {
        @usableFromInline var index = Index(0, 0)
        @usableFromInline init() {}
    }

    /// The runs, sorted, disjoint, maximally merged (a copy: O(n)).
    @inlinable public var runs: [Run<Value>] { storage.elements }

    /// An empty map.
    @inlinable public init() {}

    /// Number of stored runs (extents).
    @inlinable public var runCount: Int { storage.count }
    @inlinable public var isEmpty: Bool { storage.isEmpty }

    /// The first run, if any.
    @inlinable public var first: Run<Value>? { storage.first }

    /// Position of the first run whose end lies above `key` (the run holding `key`, or the
    /// first run after it).
    @inlinable func firstIndex(endingAbove key: UInt64) -> Index {
        // The hinted run holds key (a walk's next page is mostly on the same run), or the
        // answer is the next run: check the hint's neighbourhood before searching.
        var i = hint.index
        let end = storage.endIndex
        if storage.isValid(i) {
            if i != end, storage[i].start <= key {
                if storage[i].end > key { return i }
                i = storage.index(after: i)
                // A key in the gap after the hinted run leaves the hint there: the walk is about
                // to grow that run by this key.
                if i == end { return i }
                if storage[i].end > key {
                    if storage[i].start <= key { hint.index = i }
                    return i
                }
            } else if i == storage.startIndex || storage[storage.index(before: i)].end <= key {
                if i == end || storage[i].end > key { return i }
            }
        }
        let found = storage.partitioningIndex { $0.end > key }
        hint.index = found
        return found
    }

    /// The value at `key`, or nil when no run covers it.
    @inlinable public func value(at key: UInt64) -> Value? {
        let i = firstIndex(endingAbove: key)
        guard i != storage.endIndex, storage[i].start <= key else { return nil }
        return storage[i].value.advanced(by: key - storage[i].start)
    }

    /// The run covering `key`, cut to start at `key`: its value there and how many keys on it
    /// extends. Nil when no run covers `key`.
    @inlinable public func run(at key: UInt64) -> Run<Value>? {
        let i = firstIndex(endingAbove: key)
        guard i != storage.endIndex, storage[i].start <= key else { return nil }
        let r = storage[i]
        return Run(start: key, count: r.end - key, value: r.value.advanced(by: key - r.start))
    }

    /// The first key at or above `key` covered by a run, if any.
    @inlinable public func nextCovered(from key: UInt64) -> UInt64? {
        let i = firstIndex(endingAbove: key)
        guard i != storage.endIndex else { return nil }
        return max(storage[i].start, key)
    }

    /// Calls `body` for every piece of `[start, start + count)` in ascending order: runs cut to
    /// the range, and the gaps between them with a nil value.
    @inlinable public func forEachSegment(
        from start: UInt64, count: UInt64, _ body: (_ start: UInt64, _ count: UInt64, _ value: Value?) -> Void
    ) {
        let end = start + count
        var key = start
        var i = firstIndex(endingAbove: start)
        while key < end {
            if i != storage.endIndex, storage[i].start < end {
                let r = storage[i]
                if r.start > key {
                    body(key, r.start - key, nil)
                    key = r.start
                }
                let segEnd = min(r.end, end)
                body(key, segEnd - key, r.value.advanced(by: key - r.start))
                key = segEnd
                i = storage.index(after: i)
            } else {
                body(key, end - key, nil)
                key = end
            }
        }
    }

    /// Replaces whatever `[start, start + count)` held with `value` (nil clears the range).
    ///
    /// Works in place: cutting the runs at the range's edges, dropping those inside, and
    /// merging the new run with its neighbours. No temporary storage, so the page-at-a-time
    /// updates of a walk cost a lookup and at most one insertion.
    @inlinable public mutating func assign(_ start: UInt64, _ count: UInt64, _ value: Value?) {
        guard count > 0 else { return }
        let end = start + count
        // A sequential walk's common case: the hinted run ends at start and continues into
        // value, and nothing lies in the range after it. Grow it in place.
        if let value, storage.isValid(hint.index), hint.index != storage.endIndex {
            let h = hint.index
            let r = storage[h]
            if r.end == start, r.value.advanced(by: r.count) == value {
                let next = storage.index(after: h)
                if next == storage.endIndex || storage[next].start > end {
                    storage[h].count += count
                    return
                }
            }
        }
        var lo = firstIndex(endingAbove: start)
        if lo != storage.endIndex, storage[lo].start < start {
            let r = storage[lo]
            if r.end > end {
                // Strictly inside one run: unchanged, or split it in three (two without a value).
                let here = r.value.advanced(by: start - r.start)
                if here == value { return }
                storage[lo].count = start - r.start
                let right = Run(start: end, count: r.end - end, value: r.value.advanced(by: end - r.start))
                var at = storage.insert(right, at: storage.index(after: lo))
                if let value { at = storage.insert(Run(start: start, count: count, value: value), at: at) }
                hint.index = at
                return
            }
            storage[lo].count = start - r.start
            lo = storage.index(after: lo)
        }
        // Drop the runs wholly inside, cut the one reaching past the end.
        var hi = lo
        while hi != storage.endIndex, storage[hi].end <= end { hi = storage.index(after: hi) }
        if hi != storage.endIndex, storage[hi].start < end {
            let r = storage[hi]
            storage[hi] = Run(start: end, count: r.end - end, value: r.value.advanced(by: end - r.start))
        }
        if lo != hi { lo = storage.removeSubrange(lo, hi) }
        hint.index = lo
        guard let value else { return }
        let new = Run(start: start, count: count, value: value)
        if lo != storage.startIndex, case let before = storage.index(before: lo), Self.continues(storage[before], new) {
            // Growing the run to the left, as a sequential walk does: no insertion.
            storage[before].count += count
            hint.index = mergeRight(before)
        } else if lo != storage.endIndex, Self.continues(new, storage[lo]) {
            storage[lo] = Run(start: start, count: count + storage[lo].count, value: value)
        } else {
            hint.index = storage.insert(new, at: lo)
        }
    }

    /// Removes the first key of the first run and returns it (a pool handing out its lowest
    /// frame): the run shrinks in place, no lookup.
    @inlinable public mutating func removeFirstKey() -> UInt64? {
        guard let r = storage.first else { return nil }
        let i = storage.startIndex
        if r.count == 1 {
            storage.remove(at: i)
        } else {
            storage[i] = Run(start: r.start + 1, count: r.count - 1, value: r.value.advanced(by: 1))
        }
        return r.start
    }

    /// Merges the run at `i` with the run after it when that one continues it; returns `i`.
    @inlinable mutating func mergeRight(_ i: Index) -> Index {
        let next = storage.index(after: i)
        guard next != storage.endIndex, Self.continues(storage[i], storage[next]) else { return i }
        storage[i].count += storage[next].count
        let start = storage[i].start
        storage.remove(at: next)
        // Removing may have merged chunks and moved the run: look it up again.
        return storage.partitioningIndex { $0.end > start }
    }

    @inline(__always)
    @inlinable static func continues(_ a: Run<Value>, _ b: Run<Value>) -> Bool {
        a.end == b.start && a.value.advanced(by: a.count) == b.value
    }

    /// One key: the walk's common case. A run grown by one key at its end, or shrunk by one
    /// at either end, is changed in place after a single lookup; anything else goes through
    /// `assign`.
    @inlinable mutating func updateOne(_ key: UInt64, _ transform: (Value?) -> Value?) {
        let i = firstIndex(endingAbove: key)
        let inRun = i != storage.endIndex && storage[i].start <= key
        let old = inRun ? storage[i].value.advanced(by: key - storage[i].start) : nil
        let new = transform(old)
        if new == old { return }
        if !inRun, let new, i != storage.startIndex, case let before = storage.index(before: i),
            storage[before].end == key, storage[before].value.advanced(by: storage[before].count) == new
        {
            storage[before].count += 1
            hint.index = mergeRight(before)
            return
        }
        if inRun, new == nil {
            if storage[i].count == 1 {
                hint.index = storage.remove(at: i)
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

    /// Checks what the map promises (runs sorted, disjoint, non-empty, maximally merged) and
    /// the chunk structure under it; traps when one does not hold. For tests: O(n).
    public func _checkInvariants() {
        storage.checkInvariants()
        var previous: Run<Value>?
        for r in storage.elements {
            precondition(r.count > 0, "empty run at \(r.start)")
            precondition(r.start <= UInt64(Int64.max) - r.count, "run at \(r.start) reaches 2^63")
            if let p = previous {
                precondition(p.end <= r.start, "runs at \(p.start) and \(r.start) overlap or are out of order")
                precondition(!Self.continues(p, r), "runs at \(p.start) and \(r.start) should be one")
            }
            previous = r
        }
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
    /// The same value: a constant run holds one value throughout.
    @inlinable public func advanced(by offset: UInt64) -> Self { self }
}

extension Int64: ConstantRunValue {}

extension Bool: ConstantRunValue {}

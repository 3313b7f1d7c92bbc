/// A sorted sequence kept as a list of chunks: a two-level B+ tree whose leaves are short
/// arrays. Finding a position is two binary searches, O(log n); an insertion or removal moves
/// at most a chunk's elements (≤ `capacity`), and a split or merge moves the chunk references
/// (n / capacity of them, a pointer each) once per capacity/2 updates. So an update in the
/// middle costs about the same whatever the order the elements come in, where a flat sorted
/// array moves half the array each time (a million out-of-order ptes took minutes).
///
/// Positions are `(chunk, slot)` pairs; every chunk is non-empty, so a valid position names
/// an element or is `endIndex`. Any insertion or removal may move the positions after it:
/// use the position the mutating call returns.
public struct Chunked<Element> {
    @usableFromInline var chunks: [[Element]] = []
    @usableFromInline var count = 0

    /// Most elements in a chunk; a full one splits in two halves.
    @inlinable static var capacity: Int { 256 }

    public struct Index: Comparable {
        @usableFromInline var chunk: Int
        @usableFromInline var slot: Int
        @inlinable init(_ chunk: Int, _ slot: Int) {
            self.chunk = chunk
            self.slot = slot
        }
        @inlinable public static func < (a: Index, b: Index) -> Bool {
            a.chunk < b.chunk || (a.chunk == b.chunk && a.slot < b.slot)
        }
    }

    @inlinable public init() {}

    @inlinable public var isEmpty: Bool { count == 0 }
    @inlinable public var startIndex: Index { Index(0, 0) }
    @inlinable public var endIndex: Index { Index(chunks.count, 0) }

    @inlinable public func index(after i: Index) -> Index {
        i.slot + 1 < chunks[i.chunk].count ? Index(i.chunk, i.slot + 1) : Index(i.chunk + 1, 0)
    }

    @inlinable func index(before i: Index) -> Index {
        i.slot > 0 ? Index(i.chunk, i.slot - 1) : Index(i.chunk - 1, chunks[i.chunk - 1].count - 1)
    }

    /// Whether `i` names an element or is `endIndex` (a stale hint may be neither).
    @inlinable func isValid(_ i: Index) -> Bool {
        (i.chunk < chunks.count && i.slot >= 0 && i.slot < chunks[i.chunk].count)
            || (i.chunk == chunks.count && i.slot == 0)
    }

    @inlinable public subscript(i: Index) -> Element {
        get { chunks[i.chunk][i.slot] }
        _modify { yield &chunks[i.chunk][i.slot] }
    }

    @inlinable var first: Element? { chunks.first?.first }

    /// The first position whose element satisfies `belongsAfter`, which must be false for a
    /// prefix of the sequence and true for the rest.
    @inlinable public func partitioningIndex(where belongsAfter: (Element) -> Bool) -> Index {
        var lo = 0
        var hi = chunks.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if belongsAfter(chunks[mid][chunks[mid].count - 1]) { hi = mid } else { lo = mid + 1 }
        }
        guard lo < chunks.count else { return endIndex }
        var s = 0
        var e = chunks[lo].count - 1
        while s < e {
            let mid = (s + e) >> 1
            if belongsAfter(chunks[lo][mid]) { e = mid } else { s = mid + 1 }
        }
        return Index(lo, s)
    }

    /// Inserts `element` before position `i`; returns the element's position.
    @inlinable @discardableResult
    public mutating func insert(_ element: Element, at i: Index) -> Index {
        count += 1
        guard !chunks.isEmpty else {
            chunks.append([element])
            return Index(0, 0)
        }
        // At the end: append to the last chunk.
        var c = i.chunk
        var s = i.slot
        if c == chunks.count {
            c -= 1
            s = chunks[c].count
        }
        chunks[c].insert(element, at: s)
        guard chunks[c].count > Self.capacity else { return Index(c, s) }
        let half = chunks[c].count / 2
        let right = Array(chunks[c][half...])
        chunks[c].removeSubrange(half...)
        chunks.insert(right, at: c + 1)
        return s < half ? Index(c, s) : Index(c + 1, s - half)
    }

    /// Removes the element at `i`; returns the position of the element that followed it.
    @inlinable @discardableResult
    public mutating func remove(at i: Index) -> Index {
        count -= 1
        chunks[i.chunk].remove(at: i.slot)
        return settle(i.chunk, i.slot)
    }

    /// Removes the elements in `[lo, hi)`; returns the position of the element at `hi`.
    @inlinable @discardableResult
    mutating func removeSubrange(_ lo: Index, _ hi: Index) -> Index {
        guard lo < hi else { return lo }
        if lo.chunk == hi.chunk {
            count -= hi.slot - lo.slot
            chunks[lo.chunk].removeSubrange(lo.slot..<hi.slot)
            return settle(lo.chunk, lo.slot)
        }
        // The tail of lo's chunk, the chunks wholly inside, the head of hi's chunk.
        count -= chunks[lo.chunk].count - lo.slot
        chunks[lo.chunk].removeSubrange(lo.slot...)
        if hi.chunk < chunks.count {
            count -= hi.slot
            chunks[hi.chunk].removeSubrange(..<hi.slot)
        }
        for c in lo.chunk + 1..<hi.chunk { count -= chunks[c].count }
        chunks.removeSubrange(lo.chunk + 1..<hi.chunk)
        // The element at hi is now first in chunk lo.chunk + 1 (or gone past the end).
        if chunks[lo.chunk].isEmpty {
            chunks.remove(at: lo.chunk)
            return settle(lo.chunk, 0)
        }
        return settle(lo.chunk, chunks[lo.chunk].count)
    }

    /// After a removal from chunk `c`: drops it when empty, merges it into a neighbour when
    /// small, and says where position `(c, slot)` is now.
    @inlinable mutating func settle(_ c: Int, _ slot: Int) -> Index {
        var c = c
        var slot = slot
        if c < chunks.count && chunks[c].isEmpty {
            chunks.remove(at: c)
            slot = 0
        } else if c < chunks.count && chunks[c].count < Self.capacity / 4 {
            if c + 1 < chunks.count && chunks[c].count + chunks[c + 1].count <= Self.capacity / 2 {
                let right = chunks.remove(at: c + 1)
                chunks[c].append(contentsOf: right)
            } else if c > 0 && chunks[c - 1].count + chunks[c].count <= Self.capacity / 2 {
                let here = chunks.remove(at: c)
                slot += chunks[c - 1].count
                c -= 1
                chunks[c].append(contentsOf: here)
            }
        }
        if c < chunks.count && slot == chunks[c].count { return Index(c + 1, 0) }
        return c < chunks.count ? Index(c, slot) : endIndex
    }

    /// Every element in order.
    @inlinable var elements: [Element] { chunks.flatMap { $0 } }

    /// Checks the structure's invariants (tests call it after each step).
    func checkInvariants() {
        precondition(chunks.allSatisfy { !$0.isEmpty && $0.count <= Self.capacity }, "empty or oversized chunk")
        precondition(chunks.reduce(0) { $0 + $1.count } == count, "count is off")
    }
}

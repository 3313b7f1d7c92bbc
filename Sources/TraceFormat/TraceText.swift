import Synchronization

/// Text a trace carries: a `mark`'s label or a VMA's `name=`.
///
/// Interned: the value is a number into a table of the process's distinct texts, so a
/// `Statement` holding one stays plain data. Statements are built, moved and dropped millions
/// of times a second by the decoders and the replay loop; with a `String` inside, every copy
/// of every statement went through the runtime's reference counting and outlined copy
/// functions, which cost more than decoding the fields.
///
/// Each distinct text is kept once for the life of the process. Generated and recorded traces
/// repeat a handful of labels; a trace with a distinct mark per request holds its marks in
/// memory, about their size in the file.
public struct TraceText: Hashable, Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// Index into the table; 0 is the empty text. Equal texts have equal ids.
    private let id: UInt32

    /// The text `string`, interned.
    public init(_ string: String) {
        id = string.isEmpty ? 0 : TraceText.table.withLock { $0.intern(string) }
    }

    /// The literal text, interned.
    public init(stringLiteral value: String) { self.init(value) }

    /// The text itself.
    public var string: String {
        id == 0 ? "" : TraceText.table.withLock { $0.texts[Int(id)] }
    }

    /// Whether the text is empty.
    public var isEmpty: Bool { id == 0 }

    /// The text itself.
    public var description: String { string }

    private struct Table {
        var texts: [String] = [""]
        var ids: [String: UInt32] = [:]

        mutating func intern(_ s: String) -> UInt32 {
            if let id = ids[s] { return id }
            // 2^32 - 1 distinct texts would need far more memory than a trace can bring.
            let id = UInt32(texts.count)
            texts.append(s)
            ids[s] = id
            return id
        }
    }

    private static let table = Mutex(Table())
}

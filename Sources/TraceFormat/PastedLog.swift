import Foundation

/// A trace log as people paste it into bug reports and mails: the QEMU `log` and `simple`
/// backends' `PID@SEC.USEC:` stamps, syslog and journald prefixes in any locale, `> ` quoting,
/// indentation, unrelated lines in between, and lines a mail client wrapped (format=flowed:
/// a line ending in a space continues on the next). What is left of each record is the event
/// and its arguments, with the number of the line it started on.
public enum PastedLog {
    /// One record: the line it starts on, the event name and its arguments, and the
    /// `SEC.USEC` stamp when the line has one.
    public struct Record {
        /// 1-based line number of the record's first line.
        public var line: Int
        /// The whole record as it reads once unquoted and unwrapped.
        public var text: Substring
        /// From the event name on: `vfio_listener_region_add_ram region_add ...`.
        public var event: Substring
        /// `(SEC, USEC)` of a `PID@SEC.USEC:` stamp right before the event.
        public var time: (sec: UInt64, usec: UInt64)?
    }

    /// The records of `text` whose event name starts with one of `prefixes`, in order.
    public static func records(_ text: String, prefixes: [String] = ["vfio_"]) -> [Record] {
        var out: [Record] = []
        // The logical line being built: its first line number, its text, whether it is open.
        var current: (line: Int, text: String)?
        var open = false
        func flush() {
            if let c = current, let r = record(c.text[...], line: c.line, prefixes: prefixes) { out.append(r) }
            current = nil
        }
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = unquoted(raw)
            if open, current != nil, eventStart(line, prefixes: prefixes) == nil, stamp(in: line) == nil, !line.isEmpty {
                // A soft break: the line above ended in a space, and this one starts no record.
                current?.text += line
            } else {
                flush()
                current = (i + 1, String(line))
            }
            open = line.last == " "
        }
        flush()
        return out
    }

    /// The line without mail quoting (`>`, `> >`, `>>`) and indentation.
    public static func unquoted(_ raw: Substring) -> Substring {
        var s = raw
        if s.last == "\r" { s = s.dropLast() }
        while let f = s.first, f == " " || f == "\t" || f == ">" { s = s.dropFirst() }
        return s
    }

    /// Where the first event named `prefix...` starts: a word beginning with one of the
    /// prefixes, at the start of the line or after a space, a colon or a bracket.
    static func eventStart(_ s: Substring, prefixes: [String]) -> Substring.Index? {
        prefixes.compactMap { eventStart(s, prefix: $0) }.min()
    }

    static func eventStart(_ s: Substring, prefix: String) -> Substring.Index? {
        var from = s.startIndex
        while let r = s[from...].range(of: prefix) {
            let before = r.lowerBound == s.startIndex ? nil : s[s.index(before: r.lowerBound)]
            if before == nil || before == " " || before == ":" || before == "]" { return r.lowerBound }
            from = r.upperBound
        }
        return nil
    }

    /// A `PID@SEC.USEC:` stamp anywhere in the line, and where it ends.
    static func stamp(in s: Substring) -> (sec: UInt64, usec: UInt64, end: Substring.Index)? {
        var from = s.startIndex
        while let at = s[from...].firstIndex(of: "@") {
            from = s.index(after: at)
            let pid = s[..<at].reversed().prefix { $0.isNumber }
            guard !pid.isEmpty, let colon = s[from...].firstIndex(of: ":") else { continue }
            let parts = s[from..<colon].split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 2, let sec = UInt64(parts[0]), let usec = UInt64(parts[1]) {
                return (sec, usec, s.index(after: colon))
            }
        }
        return nil
    }

    static func record(_ s: Substring, line: Int, prefixes: [String]) -> Record? {
        guard let start = eventStart(s, prefixes: prefixes) else { return nil }
        var time: (sec: UInt64, usec: UInt64)?
        if let st = stamp(in: s[..<start]), st.end == start { time = (st.sec, st.usec) }
        return Record(line: line, text: s, event: s[start...], time: time)
    }
}

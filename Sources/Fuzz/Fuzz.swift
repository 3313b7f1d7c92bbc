import Replay
import TraceFormat
import VFIOEngines
import VFIOModel

#if canImport(Glibc)
    @preconcurrency import Glibc
#endif

/// The fuzz targets: what each does with one input, and what counts as a bug. A bad input
/// refused with a `TraceError` is fine; a trap, a hang, or two readers disagreeing is a bug,
/// reported by trapping so that libFuzzer keeps the input.
enum FuzzTarget: String, CaseIterable {
    /// The text reader, line by line, in memory.
    case text
    /// The binary reader over a file holding the input.
    case binary
    /// Every input the text reader accepts, replayed through all engines with a small page
    /// budget (so that one input cannot ask for days of walking).
    case replay
    /// Records made from the input (byte: type, byte: length, then the payload; repeated) in a
    /// well-framed binary trace, so that mutations reach the decoder instead of dying at a
    /// checksum. Every one the reader accepts goes to text and back: the same statements, byte
    /// for byte, or the text reader refuses it (a bug: both forms carry the same statements).
    case roundtrip

    func run(_ input: UnsafeRawBufferPointer) {
        switch self {
        case .text: _ = Self.parseText(input)
        case .binary: _ = Self.readFile(Self.scratch(input, "in"))
        case .replay:
            guard let statements = Self.parseText(input) else { return }
            var replayer = Replayer(engines: Engines.all)
            replayer.maxPages = 1 << 12
            var observer = NoObserver()
            _ = try? replayer.replay(statements: statements, name: "fuzz", observer: &observer)
        case .roundtrip:
            guard case .success(let statements)? = Self.readFile(Self.framed(input)) else { return }
            let text = Self.write(statements, "text.txt", .text)
            guard case .success(let fromText) = Self.readFile(text) else {
                fatalError("the binary reader accepted statements the text reader refuses: \(Self.readFile(text) as Any)")
            }
            Self.expectSame(statements, fromText, "binary → text")
            let binary = Self.write(fromText, "again.vptr", .binary)
            guard case .success(let again) = Self.readFile(binary) else { fatalError("a binary trace we wrote does not read back") }
            Self.expectSame(statements, again, "binary → text → binary")
        }
    }

    /// The statements of a text input, or nil when the reader refuses it.
    static func parseText(_ input: UnsafeRawBufferPointer) -> [Statement]? {
        var parser = TextParser(file: "fuzz.txt")
        var out: [Statement] = []
        let bytes = input.bindMemory(to: UInt8.self)
        var start = 0
        do throws(TraceError) {
            while start <= bytes.count {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                if let s = try parser.parse(bytes: UnsafeBufferPointer(rebasing: bytes[start..<end])) { out.append(s) }
                start = end + 1
            }
            try parser.finish()
            return out
        } catch {
            return nil
        }
    }

    static func readFile(_ path: String) -> Result<[Statement], TraceError>? {
        do throws(TraceError) {
            let r = try TraceReader(path: path)
            var out: [Statement] = []
            while let s = try r.next() { out.append(s) }
            return .success(out)
        } catch {
            return .failure(error)
        }
    }

    /// A binary trace whose records are cut from `input`: type byte, length byte, payload.
    static func framed(_ input: UnsafeRawBufferPointer) -> String {
        let path = directory + "/framed.vptr"
        do throws(TraceError) {
            let w = try TraceWriter(path: path, form: .binary)
            var i = 0
            while i + 2 <= input.count {
                let type = UInt64(input[i] & 0x1f)
                let length = min(Int(input[i + 1]), input.count - i - 2)
                w.writeUnknownRecord(type: type, payload: Array(input[(i + 2)..<(i + 2 + length)]))
                i += 2 + length
            }
            try w.finish()
        } catch {
            fatalError("cannot write \(path): \(error)")
        }
        return path
    }

    static func write(_ statements: [Statement], _ name: String, _ form: TraceForm) -> String {
        let path = directory + "/" + name
        do throws(TraceError) {
            let w = try TraceWriter(path: path, form: form)
            for s in statements { try w.write(s) }
            try w.finish()
        } catch {
            fatalError("statements a reader accepted cannot be written: \(error)")
        }
        return path
    }

    static func expectSame(_ a: [Statement], _ b: [Statement], _ what: String) {
        // Byte for byte: String's == calls canonically equivalent texts equal.
        guard a == b, a.map({ Array($0.canonicalText.utf8) }) == b.map({ Array($0.canonicalText.utf8) }) else {
            fatalError("\(what) changed the statements")
        }
    }

    /// A directory of this process's own in /dev/shm (or /tmp), for inputs that must be files.
    nonisolated(unsafe) static var directory: String = {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        let dir = "\(base)/pinreplay-fuzz-\(getpid())"
        mkdir(dir, 0o700)
        return dir
    }()

    static func scratch(_ input: UnsafeRawBufferPointer, _ name: String) -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot write \(path)")
        do throws(TraceError) { try writeAll(fd, Array(input)[...], name: path) } catch { preconditionFailure("\(error)") }
        close(fd)
        return path
    }
}

/// libFuzzer's entry point; the target comes from `PINREPLAY_FUZZ_TARGET`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let name = getenv("PINREPLAY_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("set PINREPLAY_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue))")
    }
    target.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if FUZZING
    /// libFuzzer's own driver, started from the entry point SwiftPM links an executable with
    /// (`<module>_main`), since its `main` cannot be libFuzzer's.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<Int32>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32

    @_cdecl("pinreplay_fuzz_main")
    func fuzzDriverMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        var argc = argc
        var argv = argv
        return LLVMFuzzerRunDriver(&argc, &argv) { fuzzOne($0, $1) }
    }
#else
    /// Without libFuzzer (a plain build): `pinreplay-fuzz TARGET FILE...` runs saved inputs
    /// (a crash libFuzzer found, a corpus) through a target, to reproduce and debug them.
    @main
    enum FuzzMain {
        static func main() {
            let args = CommandLine.arguments.dropFirst()
            guard let name = args.first, let target = FuzzTarget(rawValue: name) else {
                print("usage: pinreplay-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE...")
                exit(2)
            }
            for path in args.dropFirst() {
                guard let f = fopen(path, "rb") else {
                    print("\(path): cannot open")
                    exit(2)
                }
                var bytes: [UInt8] = []
                var buf = [UInt8](repeating: 0, count: 1 << 16)
                while case let n = fread(&buf, 1, buf.count, f), n > 0 { bytes += buf[0..<n] }
                fclose(f)
                bytes.withUnsafeBytes { target.run($0) }
                print("\(path): ok")
            }
        }
    }
#endif

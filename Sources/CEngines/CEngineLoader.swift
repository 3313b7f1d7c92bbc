import CEngineABI
import Foundation
import VFIOModel

#if canImport(Glibc)
    import Glibc
#endif

/// Why a C engine could not be built or loaded; `message` names the file (and, for a compile
/// error, the line) first.
public struct CEngineError: Error, CustomStringConvertible, Equatable {
    /// One line: the file, where, and what is wrong.
    public var message: String
    public var description: String { message }
    /// An error saying `message`.
    public init(message: String) { self.message = message }
}

/// Builds engines from C: compiles the user's block of vfio_iommu_type1.c with the system C
/// compiler against the kernel header of its era (force-included), followed by the era's
/// entry points, into a shared object cached by the hash of everything that went into it;
/// then loads it.
/// The kernel API a C engine is written against: the header and entry points it is built with.
public enum KernelAPI: String, CaseIterable, Sendable {
    /// 4.x: single-page vaddr_get_pfn(), get_user_pages_longterm(), mmap_sem.
    case v4_16 = "4.16"
}

/// Compiles a reviewer's C into an engine and loads it, caching the shared object.
public enum CEngineLoader {

    /// Whether an `--engines` item names a C file rather than an engine.
    public static func isPath(_ item: String) -> Bool { item.hasSuffix(".c") || item.contains("/") }

    /// The engine's name: the file's stem (`./my-patch.c` is `my-patch`).
    public static func engineName(_ path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return file.hasSuffix(".c") ? String(file.dropLast(2)) : file
    }

    /// Compiles (or finds in the cache) and loads the C engine in `path`, named `name` (nil:
    /// the file's stem). `kernelAPI` nil picks the era from what the file uses; `cache` nil is
    /// the user's cache directory.
    public static func load(path: String, name: String? = nil, kernelAPI: KernelAPI? = nil, cache: String? = nil)
        throws(CEngineError) -> CEngine
    {
        guard let source = FileManager.default.contents(atPath: path) else {
            throw CEngineError(message: "\(path): cannot read: \(String(cString: strerror(errno)))")
        }
        let api: String
        if let kernelAPI { api = kernelAPI.rawValue } else { api = try detectAPI(path: path, source: source) }
        let include = try includeDirectory(cache: cache)
        let compiler = try findCompiler()
        let header = "pinreplay/kernel-\(api).h"
        let glue = "pinreplay/engine-\(api).c"
        var key = FNV1a()
        key.add("pinreplay C engine 1")
        key.add(compiler)
        key.add(flags.joined(separator: " "))
        for file in ["pinreplay/world.h", header, glue] {
            guard let bytes = FileManager.default.contents(atPath: include + "/" + file) else {
                throw CEngineError(message: "\(include)/\(file): missing from pinreplay's installation")
            }
            key.add(bytes)
        }
        key.add(source)
        let library = try cacheDirectory(cache) + "/\(engineName(path))-\(api)-\(key.hex).so"
        if !FileManager.default.fileExists(atPath: library) {
            // A whole vfio_iommu_type1.c is cut down to what the era's entry points call.
            let extractor = CExtractor(String(decoding: source, as: UTF8.self), path: path)
            var unit = path
            if extractor.isWholeFile {
                var provided = Set<String>()
                for file in ["pinreplay/world.h", header] {
                    let text = (try? String(contentsOfFile: include + "/" + file, encoding: .utf8)) ?? ""
                    provided.formUnion(CExtractor.identifiers(text))
                }
                let cut = try extractor.extract(needed: neededFunctions[api] ?? [], provided: provided)
                unit = library.dropLast(3) + "-cut.c"
                guard FileManager.default.createFile(atPath: unit, contents: Data(cut.utf8)) else {
                    throw CEngineError(message: "\(unit): cannot write the cut block")
                }
            }
            try compile(path: unit, compiler: compiler, include: include, header: header, glue: glue, into: library)
        }
        return try open(library, name: name ?? engineName(path), path: path, api: api)
    }

    /// Splits an `--engines` item `NAME=PATH` into the engine's name and its file; a bare path
    /// is named by its stem. Nil when the item names no C file.
    public static func namedPath(_ item: String) -> (name: String, path: String)? {
        if let eq = item.firstIndex(of: "="), isPath(String(item[item.index(after: eq)...])) {
            let name = String(item[..<eq])
            return name.isEmpty || name.contains("/") ? nil : (name, String(item[item.index(after: eq)...]))
        }
        return isPath(item) ? (engineName(item), item) : nil
    }

    /// The functions of vfio_iommu_type1.c each era's entry points call (`engine-ERA.c`): what a
    /// whole file is cut down to, with the helpers they call.
    static let neededFunctions: [String: [String]] = [
        "4.16": [
            "vfio_lock_acct", "is_invalid_reserved_pfn", "put_pfn", "vaddr_get_pfn", "vfio_pin_pages_remote",
            "vfio_unpin_pages_remote",
        ]
    ]

    /// Optimized as the kernel is, with symbols (a crash names its function); position-
    /// independent, only the entry points exported; the block's own function calls counted
    /// through -finstrument-functions.
    static let flags = ["-std=gnu11", "-O2", "-g", "-fPIC", "-shared", "-fvisibility=hidden", "-finstrument-functions", "-w"]

    /// 4.16 unless the file uses what only later kernels have.
    static func detectAPI(path: String, source: Data) throws(CEngineError) -> String {
        let text = String(decoding: source, as: UTF8.self)
        let later = ["vfio_batch", "pin_user_pages_remote", "follow_fault_pfn", "vaddr_get_pfns"].filter { text.contains($0) }
        if let first = later.first {
            throw CEngineError(
                message: "\(path): uses \(first) of the 5.x/6.x API; only the 4.16 API (--kernel-api 4.16) is available so far")
        }
        return "4.16"
    }

    /// `include/` beside the tool: from PINREPLAY_INCLUDE, else the nearest ancestor of the
    /// executable holding `include/pinreplay/world.h` (the repository for a build tree) or
    /// `share/pinreplay/include/pinreplay/world.h` (an installation), else the copy the binary
    /// carries (`EmbeddedInclude.swift`), written once into the cache.
    static func includeDirectory(cache: String? = nil) throws(CEngineError) -> String {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["PINREPLAY_INCLUDE"], !env.isEmpty {
            guard fm.fileExists(atPath: env + "/pinreplay/world.h") else {
                throw CEngineError(message: "PINREPLAY_INCLUDE=\(env): no pinreplay/world.h there")
            }
            return env
        }
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            for candidate in ["include", "share/pinreplay/include"] {
                let path = dir.appendingPathComponent(candidate).path
                if fm.fileExists(atPath: path + "/pinreplay/world.h") { return path }
            }
            dir = dir.deletingLastPathComponent()
        }
        return try embeddedIncludeDirectory(cache: cache)
    }

    /// The files of include/pinreplay/ the binary carries, by path under include/.
    public static var embeddedFiles: [String: String] { embeddedInclude }

    /// The headers the binary carries, written under the cache directory in a directory named
    /// by their contents; a temporary directory renamed into place, so runs never see half.
    static func embeddedIncludeDirectory(cache: String?) throws(CEngineError) -> String {
        var key = FNV1a()
        for path in embeddedInclude.keys.sorted() {
            key.add(path)
            key.add(embeddedInclude[path] ?? "")
        }
        let dir = try cacheDirectory(cache) + "/include-\(key.hex)"
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/pinreplay/world.h") { return dir }
        let tmp = dir + ".tmp-\(getpid())"
        do {
            try fm.createDirectory(atPath: tmp + "/pinreplay", withIntermediateDirectories: true)
            for (path, text) in embeddedInclude {
                try text.write(toFile: tmp + "/" + path, atomically: false, encoding: .utf8)
            }
        } catch {
            throw CEngineError(message: "\(tmp): cannot write pinreplay's headers: \(error.localizedDescription)")
        }
        if rename(tmp, dir) != 0 {
            // Another run put them there first.
            try? fm.removeItem(atPath: tmp)
            guard fm.fileExists(atPath: dir + "/pinreplay/world.h") else {
                throw CEngineError(message: "\(dir): cannot place pinreplay's headers: \(String(cString: strerror(errno)))")
            }
        }
        return dir
    }

    /// `$CC`, else `cc`, on PATH.
    static func findCompiler() throws(CEngineError) -> String {
        let env = ProcessInfo.processInfo.environment
        let name = env["CC"].flatMap { $0.isEmpty ? nil : $0 } ?? "cc"
        if name.contains("/") { return name }
        for dir in (env["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CEngineError(message: "no C compiler: '\(name)' is not on PATH (install gcc or clang, or set CC)")
    }

    /// `c-engines` under `cache`, else `$PINREPLAY_CACHE`, else `$XDG_CACHE_HOME/pinreplay`,
    /// else `~/.cache/pinreplay`.
    static func cacheDirectory(_ cache: String?) throws(CEngineError) -> String {
        let env = ProcessInfo.processInfo.environment
        let dir =
            cache ?? env["PINREPLAY_CACHE"]
            ?? env["XDG_CACHE_HOME"].map { $0 + "/pinreplay" }
            ?? ((env["HOME"] ?? NSTemporaryDirectory()) + "/.cache/pinreplay")
        let engines = dir + "/c-engines"
        do {
            try FileManager.default.createDirectory(atPath: engines, withIntermediateDirectories: true)
        } catch {
            throw CEngineError(message: "\(engines): cannot create the cache directory: \(error.localizedDescription)")
        }
        return engines
    }

    /// Compiles one translation unit, the user's file then the era's entry points, into a
    /// temporary file renamed into place: a concurrent run sees the whole library or none.
    static func compile(path: String, compiler: String, include: String, header: String, glue: String, into library: String)
        throws(CEngineError)
    {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let scratch = NSTemporaryDirectory() + "pinreplay-cc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let unit = scratch + "/engine.c"
        let partial = library + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do {
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            try Data("#include \"\(absolute)\"\n#include \"\(glue)\"\n".utf8).write(to: URL(fileURLWithPath: unit))
        } catch {
            throw CEngineError(message: "\(scratch): cannot write the compilation unit: \(error.localizedDescription)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: compiler)
        p.arguments = flags + ["-I", include, "-include", header, "-o", partial, unit]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = err
        do { try p.run() } catch {
            throw CEngineError(message: "\(compiler): cannot run: \(error.localizedDescription)")
        }
        let output = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            unlink(partial)
            throw CEngineError(message: compileError(output, absolute: absolute, path: path, unit: unit))
        }
        guard rename(partial, library) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(partial)
            throw CEngineError(message: "\(library): cannot store the compiled engine: \(reason)")
        }
    }

    /// The compiler's first error, with the user's file as they named it, and how many more.
    static func compileError(_ output: String, absolute: String, path: String, unit: String) -> String {
        let errors = output.split(separator: "\n").map { $0.replacingOccurrences(of: absolute, with: path) }
            .filter { $0.contains("error:") && !$0.hasPrefix(unit) }
        guard let first = errors.first else {
            let last = output.split(separator: "\n").last.map(String.init) ?? "no output"
            return "\(path): the C compiler failed: \(last)"
        }
        let more = errors.count - 1
        return first + (more > 0 ? " (and \(more) more error\(more == 1 ? "" : "s"))" : "")
    }

    static func open(_ library: String, name: String, path: String, api: String) throws(CEngineError) -> CEngine {
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            throw CEngineError(message: "\(library): cannot load: \(String(cString: dlerror()))")
        }
        func symbol(_ name: String) throws(CEngineError) -> UnsafeMutableRawPointer {
            guard let s = dlsym(handle, name) else {
                throw CEngineError(message: "\(library): no \(name): not built from pinreplay's \(api) entry points")
            }
            return s
        }
        typealias KernelAPI = @convention(c) () -> UnsafePointer<CChar>?
        let built = try unsafeBitCast(symbol("pinreplay_kernel_api"), to: KernelAPI.self)().map { String(cString: $0) }
        guard built == api else {
            throw CEngineError(message: "\(library): built for the \(built ?? "?") API, not \(api)")
        }
        return CEngine(
            name: name, path: path, kernelAPI: api,
            pinPagesRemote: unsafeBitCast(try symbol("pinreplay_vfio_pin_pages_remote"), to: CEngine.PinPagesRemote.self),
            unpinPagesRemote: unsafeBitCast(try symbol("pinreplay_vfio_unpin_pages_remote"), to: CEngine.UnpinPagesRemote.self),
            pinPageExternal: unsafeBitCast(try symbol("pinreplay_vfio_pin_page_external"), to: CEngine.PinPageExternal.self))
    }
}

/// 64-bit FNV-1a: the cache key of a compiled engine (a collision costs a wrong cache hit only
/// between two inputs that also share a file name and era).
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes {
            value ^= UInt64(b)
            value &*= 0x0000_0100_0000_01b3
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        value ^= 0xff
        value &*= 0x0000_0100_0000_01b3
    }

    mutating func add(_ s: String) { add(s.utf8) }

    var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

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

/// The kernel API a C engine is written against: the header and entry points it is built with,
/// and the world's rules it runs under (those of the Swift engine of the same kernel).
public enum KernelAPI: String, CaseIterable, Sendable {
    /// 4.x: single-page vaddr_get_pfn(), get_user_pages_longterm(), mmap_sem.
    case v4_16 = "4.16"
    /// 5.12 to 5.19: vaddr_get_pfns() over a vfio_batch, follow_pte(), pin_user_pages_remote() with vmas.
    case v5_15 = "5.15"
    /// 6.0 to 6.4: 5.15's code; R/O pins unshare possibly shared anonymous pages.
    case v6_1 = "6.1"
    /// 6.5 to 6.14: follow_pfnmap_start(), pin_user_pages_remote() without vmas.
    case v6_12 = "6.12"
    /// 6.15 to 6.17: follow_pfnmap_start() with addr_mask; unsigned batch counts.
    case v6_15 = "6.15"
    /// 6.18 to 7.x: num_pages_contiguous(), vpfn_pages(), has_rsvd, kzalloc_obj().
    case v6_18 = "6.18"

    /// The era's world rules: the profile of the Swift engine of that kernel.
    public var profile: EngineProfile {
        switch self {
        case .v4_16: .v4_16
        case .v5_15: .v5_15
        case .v6_1: .v6_1
        case .v6_12, .v6_15: .v6_12
        case .v6_18: .v6_18
        }
    }

    /// The header force-included before the file, under include/.
    var header: String { "pinreplay/kernel-\(rawValue).h" }
    /// Every header the era's unit sees: what the file need not (and may not) define itself.
    var headers: [String] {
        ["pinreplay/world.h", "pinreplay/kernel-common.h", header] + (self == .v4_16 ? [] : ["pinreplay/kernel-later.h"])
    }
    /// The entry points compiled after it.
    var glue: String { self == .v4_16 ? "pinreplay/engine-4.16.c" : "pinreplay/engine-later.c" }

    /// The functions of vfio_iommu_type1.c the era's entry points call: what a file is cut down
    /// to, with the helpers they call.
    var neededFunctions: [String] {
        switch self {
        case .v4_16:
            ["vfio_lock_acct", "is_invalid_reserved_pfn", "put_pfn", "vaddr_get_pfn", "vfio_pin_pages_remote", "vfio_unpin_pages_remote"]
        default:
            [
                "vfio_lock_acct", "is_invalid_reserved_pfn", "put_pfn", "vaddr_get_pfns", "vfio_pin_pages_remote",
                "vfio_unpin_pages_remote", "vfio_pin_page_external",
            ]
        }
    }

    /// Macros the cut defines right after a function, so that every later call of it is counted
    /// (the cost model's counters of the engine's own code): `vaddr_get_pfn(s)()` and
    /// `put_pfn()` calls; in 4.16 a `vaddr_get_pfn()` of the walk is a step of it
    /// (`pages_walked`), from 5.15 an `is_invalid_reserved_pfn()` written in
    /// `vfio_pin_pages_remote()` is (`__builtin_strcmp` on `__func__` folds at compile time).
    /// The parenthesized name inside each macro is the function itself.
    var countingMacros: [String: String] {
        func counted(_ name: String, _ count: String) -> String {
            "#define \(name)(...) ({ \(count); (\(name))(__VA_ARGS__); })"
        }
        var macros = ["put_pfn": counted("put_pfn", "pr_count_put_pfn()")]
        if self == .v4_16 {
            macros["vaddr_get_pfn"] = counted("vaddr_get_pfn", "pr_count_vaddr_get_pfn(1)")
        } else {
            macros["vaddr_get_pfns"] = counted("vaddr_get_pfns", "pr_count_vaddr_get_pfn(0)")
            macros["is_invalid_reserved_pfn"] = counted(
                "is_invalid_reserved_pfn", "if (!__builtin_strcmp(__func__, \"vfio_pin_pages_remote\")) pr_count_walk_step()")
        }
        return macros
    }

    /// Functions the header backs with the world but a file may define itself: the file's own
    /// definition wins (the header's is under `#ifndef PR_HAVE_<name>`).
    static let overridable: Set<String> = ["vfio_find_vpfn", "vfio_find_vpfn_range", "vpfn_pages", "num_pages_contiguous"]

    /// The era a file is written for, from what it uses (docs/C-ENGINES.md, "Eras"): the
    /// newest era whose marks it carries.
    public static func detect(_ text: String) -> KernelAPI {
        let uses = { (word: String) in text.contains(word) }
        if ["num_pages_contiguous", "vpfn_pages", "has_rsvd", "kzalloc_obj", "kmalloc_obj"].contains(where: uses) { return .v6_18 }
        if uses("addr_mask") { return .v6_15 }
        if uses("follow_pfnmap_start") { return .v6_12 }
        if ["vaddr_get_pfns", "vfio_batch", "pin_user_pages_remote", "follow_fault_pfn"].contains(where: uses) {
            // vfio_iommu_type1_pin_pages() takes a user_iova from 6.0 (34a255e67615).
            return uses("user_iova") ? .v6_1 : .v5_15
        }
        return .v4_16
    }
}

/// A C engine compiled into a shared object and not loaded: what it is, before any of its code
/// runs.
public struct CompiledCEngine: Sendable {
    /// The file's stem, or the name given with `NAME=PATH`.
    public let name: String
    /// The C file, as named on the command line.
    public let path: String
    /// The era it was compiled for.
    public let kernelAPI: KernelAPI
    /// The shared object in the cache.
    public let library: String

    public var summary: String { "compiled from \(path)" }
    public var kernels: String { "\(kernelAPI.rawValue)-era C, \(path)" }
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
        try open(try compile(path: path, name: name, kernelAPI: kernelAPI, cache: cache))
    }

    /// Compiles (or finds in the cache) the C engine in `path` without loading it: none of its
    /// code runs here. An isolated engine is loaded only in its worker.
    public static func compile(path: String, name: String? = nil, kernelAPI: KernelAPI? = nil, cache: String? = nil)
        throws(CEngineError) -> CompiledCEngine
    {
        guard let source = FileManager.default.contents(atPath: path) else {
            throw CEngineError(message: "\(path): cannot read: \(String(cString: strerror(errno)))")
        }
        let text = String(decoding: source, as: UTF8.self)
        let api = kernelAPI ?? KernelAPI.detect(text)
        let include = try includeDirectory(cache: cache)
        let compiler = try findCompiler()
        var key = FNV1a()
        key.add("pinreplay C engine 2")
        key.add(compiler)
        key.add(flags.joined(separator: " "))
        key.add(api.rawValue)
        // Every header and entry-point file: the era's include one another.
        for file in try includeFiles(include) {
            guard let bytes = FileManager.default.contents(atPath: include + "/" + file) else {
                throw CEngineError(message: "\(include)/\(file): missing from pinreplay's installation")
            }
            key.add(file)
            key.add(bytes)
        }
        key.add(source)
        let library = try cacheDirectory(cache) + "/\(engineName(path))-\(api.rawValue)-\(key.hex).so"
        if !FileManager.default.fileExists(atPath: library) {
            // Whole file or block, it is cut down to what the era's entry points call, with the
            // macros that count the engine's own calls.
            var provided = Set<String>()
            for file in api.headers {
                let header = (try? String(contentsOfFile: include + "/" + file, encoding: .utf8)) ?? ""
                provided.formUnion(CExtractor.identifiers(header))
            }
            provided.subtract(KernelAPI.overridable)
            let cut = try CExtractor(text, path: path).cut(needed: api.neededFunctions, provided: provided, after: api.countingMacros)
            let defines = cut.functions.filter { KernelAPI.overridable.contains($0) }.sorted().map { "-DPR_HAVE_\($0)" }
            let unit = String(library.dropLast(3)) + "-cut.c"
            guard FileManager.default.createFile(atPath: unit, contents: Data(cut.text.utf8)) else {
                throw CEngineError(message: "\(unit): cannot write the cut block")
            }
            try compile(
                path: unit, compiler: compiler, include: include, header: api.header, glue: api.glue, defines: defines, into: library)
        }
        return CompiledCEngine(name: name ?? engineName(path), path: path, kernelAPI: api, library: library)
    }

    /// The files of include/pinreplay/, by path under include/, sorted.
    static func includeFiles(_ include: String) throws(CEngineError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: include + "/pinreplay").filter {
                $0.hasSuffix(".h") || $0.hasSuffix(".c")
            }.sorted().map { "pinreplay/" + $0 }
        } catch {
            throw CEngineError(message: "\(include)/pinreplay: cannot list pinreplay's headers: \(error.localizedDescription)")
        }
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

    /// Optimized as the kernel is, with symbols (a crash names its function); position-
    /// independent, only the entry points exported.
    static let flags = ["-std=gnu11", "-O2", "-g", "-fPIC", "-shared", "-fvisibility=hidden", "-w"]

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
    static func compile(
        path: String, compiler: String, include: String, header: String, glue: String, defines: [String] = [], into library: String
    ) throws(CEngineError) {
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
        p.arguments = flags + defines + ["-I", include, "-include", header, "-o", partial, unit]
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

    /// Loads a compiled engine into this process.
    public static func open(_ compiled: CompiledCEngine) throws(CEngineError) -> CEngine {
        let (library, api) = (compiled.library, compiled.kernelAPI)
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            throw CEngineError(message: "\(library): cannot load: \(String(cString: dlerror()))")
        }
        func symbol(_ name: String) throws(CEngineError) -> UnsafeMutableRawPointer {
            guard let s = dlsym(handle, name) else {
                throw CEngineError(message: "\(library): no \(name): not built from pinreplay's \(api.rawValue) entry points")
            }
            return s
        }
        typealias KernelAPI = @convention(c) () -> UnsafePointer<CChar>?
        let built = try unsafeBitCast(symbol("pinreplay_kernel_api"), to: KernelAPI.self)().map { String(cString: $0) }
        guard built == api.rawValue else {
            throw CEngineError(message: "\(library): built for the \(built ?? "?") API, not \(api)")
        }
        return CEngine(
            compiled,
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

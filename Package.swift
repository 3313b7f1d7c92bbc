// swift-tools-version:6.0
//
// pinreplay: replay VFIO DMA-map request streams through several versions of the
// kernel's vfio_pin_pages_remote() and show where they differ.
//
// Dependencies point downward only:
//   pinreplay (exe) -> Bench, Record, Reduce, CEngines
//   Bench, Reduce -> Replay, TraceGen
//   Record -> TraceGen -> TraceFormat -> Zstd -> CZstd
//   TraceFormat -> VFIOModel (statements declare the world's VMAs and frame classes)
//   Replay -> TraceFormat, VFIOEngines -> VFIOModel
//   CEngines -> CEngineABI (include/pinreplay/world.h), VFIOModel
import PackageDescription

/// The per-page path of the engines and the world, and the per-statement path of decoding and
/// replay: in release builds, without the runtime's dynamic exclusivity checks, which cost
/// more than the simulation itself there (measured with callgrind, docs/PERFORMANCE.md), and
/// with cross-module optimization. Debug builds are optimized too (the golden suite walks
/// hundreds of millions of pages, five minutes unoptimized) but keep the exclusivity checks,
/// which is what a debug build is for.
///
/// These are unsafe flags, which a package depended on by version may not carry: so the
/// libraries are not products. pinreplay is a tool; its modules are used through it.
let hotPath: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release)),
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]

let package = Package(
    name: "pinreplay",
    products: [
        .executable(name: "pinreplay", targets: ["pinreplay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // libzstd from the system (Debian: libzstd-dev).
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"]), .brew(["zstd"])]
        ),
        // Streaming compression and decompression over libzstd.
        .target(name: "Zstd", dependencies: ["CZstd"]),
        // The simulated host: pages, address space, process limits, vfio type1 container.
        .target(name: "VFIOModel", swiftSettings: hotPath),
        // One file per kernel version of vfio_pin_pages_remote().
        .target(name: "VFIOEngines", dependencies: ["VFIOModel"], swiftSettings: hotPath),
        // Trace statements, the text form and the zstd binary form.
        .target(name: "TraceFormat", dependencies: ["Zstd", "VFIOModel"], swiftSettings: hotPath),
        // Replay of traces through engines, the differ and the reports.
        .target(name: "Replay", dependencies: ["TraceFormat", "VFIOEngines", "VFIOModel"], swiftSettings: hotPath),
        // Shrinking traces to reproducers (ddmin) and searching for them (swarm fuzzing).
        .target(name: "Reduce", dependencies: ["Replay", "TraceFormat", "TraceGen", "VFIOEngines", "VFIOModel"]),
        // The C ABI between pinreplay and an engine compiled from C (include/pinreplay/world.h).
        .systemLibrary(name: "CEngineABI"),
        // Engines compiled from a reviewer's own C: the kernel block against pinreplay's headers.
        .target(name: "CEngines", dependencies: ["CEngineABI", "VFIOModel"], swiftSettings: hotPath),
        // The child side of an isolated C engine: crash reports and the seccomp sandbox, in C.
        .target(name: "CSandbox"),
        // C engines in processes of their own: the worker, the wire records, the parent's end.
        .target(name: "Isolation", dependencies: ["CEngines", "CSandbox", "Replay", "TraceFormat", "VFIOModel"]),
        // Synthetic QEMU boots.
        .target(name: "TraceGen", dependencies: ["TraceFormat", "VFIOModel"]),
        // Traces from real processes: /proc/PID/maps and pagemap.
        .target(name: "Record", dependencies: ["TraceFormat", "TraceGen", "VFIOModel"]),
        // Benchmarks behind `pinreplay bench`: figures, never pass/fail.
        .target(name: "Bench", dependencies: ["Replay", "Reduce", "TraceGen", "TraceFormat", "VFIOEngines", "VFIOModel", "CEngines", "Isolation"]),
        // The command-line tool; stays thin.
        .executableTarget(
            name: "pinreplay",
            dependencies: [
                "Replay", "TraceGen", "TraceFormat", "VFIOEngines", "CEngines", "Isolation", "Bench", "Record", "Reduce",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // libFuzzer targets (tools/fuzz.sh builds them with -sanitize=fuzzer -DFUZZING); a plain
        // build runs saved inputs through them.
        .executableTarget(
            name: "pinreplay-fuzz", dependencies: ["Replay", "TraceFormat", "VFIOEngines", "VFIOModel"], path: "Sources/Fuzz"),
        .target(
            name: "TestSupport",
            dependencies: ["TraceFormat", "TraceGen", "Replay", "VFIOModel", "VFIOEngines"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "VFIOModelTests", dependencies: ["VFIOModel", "TestSupport"]),
        .testTarget(name: "VFIOEnginesTests", dependencies: ["VFIOEngines", "VFIOModel", "TestSupport"]),
        .testTarget(name: "TraceFormatTests", dependencies: ["TraceFormat", "Zstd", "Replay", "VFIOEngines", "TestSupport"]),
        .testTarget(name: "ReplayTests", dependencies: ["Replay", "TraceFormat", "VFIOEngines", "VFIOModel", "TestSupport"]),
        .testTarget(name: "TraceGenTests", dependencies: ["TraceGen", "TraceFormat", "Replay", "VFIOEngines", "TestSupport"]),
        .testTarget(name: "RecordTests", dependencies: ["Record", "TraceFormat", "Replay", "VFIOEngines", "VFIOModel", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "VFIOEngines"]),
        .testTarget(
            name: "CEngineTests",
            dependencies: ["CEngines", "Isolation", "Replay", "TraceFormat", "VFIOEngines", "VFIOModel", "TestSupport"]),
        .testTarget(name: "ReduceTests", dependencies: ["Reduce", "Replay", "TraceFormat", "VFIOEngines", "VFIOModel", "TestSupport"]),
    ]
)

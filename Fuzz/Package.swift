// swift-tools-version:6.1
import PackageDescription

// Coverage-guided fuzz targets (libFuzzer + AddressSanitizer) for the parsers and checks that see
// untrusted bytes: a package of its own, so that the main package's build and tests never compile it
// (as Benchmarks/). Each target is an executable: its main.swift hands over to libFuzzer (CFuzzDriver),
// its other file holds `LLVMFuzzerTestOneInput`. Build and run them with scripts/fuzz.sh, which passes
// -sanitize=fuzzer,address and -enable-testing (the targets `@testable import` internal parsers).
// Seeds: Fuzz/Corpus/<target>/. See Fuzz/README.md.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "users-session-manager-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "users-session-manager", path: ".."),
        // Already a dependency of the main package (SessionStorage's logger); FuzzReplay silences it.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    ],
    targets: [
        // libFuzzer's driver, called by each target's main.swift (see FuzzDriver.c).
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"], swiftSettings: swiftSettings),
        fuzzTarget("FuzzRequestHead", ["MicroHTTP"]),
        fuzzTarget("FuzzJSONBody", ["SessionServer", "SessionCore"]),
        fuzzTarget("FuzzRoutes", ["SessionServer", "MicroHTTP"]),
        fuzzTarget("FuzzTokenShape", ["SessionCore"]),
        fuzzTarget("FuzzLastEventID", ["SessionServer", "SessionCore", "SessionRedis", "MicroHTTP"]),
        fuzzTarget(
            "FuzzReplay",
            ["SessionStorage", "SessionCore"],
            other: [.product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v6]
)

/// One fuzz target: `Sources/<name>/` (main.swift starts libFuzzer, the other file holds
/// `LLVMFuzzerTestOneInput`), depending on the main package's `products`.
func fuzzTarget(_ name: String, _ products: [String], other: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: "users-session-manager") } + other,
        swiftSettings: swiftSettings
    )
}

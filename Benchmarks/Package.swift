// swift-tools-version:6.1
import PackageDescription

// The benchmark harness, a package of its own so that the main package's test build does not compile
// it (as swift-nio and swift-prometheus keep theirs). Build and run it with Benchmarks/run-core.sh.
let package = Package(
    name: "users-session-manager-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "users-session-manager", path: "..")
    ],
    targets: [
        .executableTarget(
            name: "SessionBenchmarks",
            dependencies: [
                .product(name: "SessionCore", package: "users-session-manager"),
                .product(name: "SessionMetrics", package: "users-session-manager"),
                .product(name: "SessionServer", package: "users-session-manager"),
                .product(name: "MicroHTTP", package: "users-session-manager"),
            ],
            path: "SessionBenchmarks",
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)

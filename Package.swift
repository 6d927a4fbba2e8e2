// swift-tools-version:6.1
import PackageDescription

/// Settings shared by every Swift target: Swift 6 language mode with strict concurrency (the default of
/// the 6 mode) and a few upcoming features that the model Swift server codebases also enable.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "users-session-manager",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SessionCore", targets: ["SessionCore"]),
        .executable(name: "sessiond", targets: ["sessiond"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "SessionCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sessiond",
            dependencies: ["SessionCore"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SessionBenchmarks",
            dependencies: ["SessionCore"],
            path: "Benchmarks/SessionBenchmarks",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionCoreTests",
            dependencies: ["SessionCore"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

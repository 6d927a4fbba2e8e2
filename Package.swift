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
        .library(name: "MicroHTTP", targets: ["MicroHTTP"]),
        .library(name: "SessionMetrics", targets: ["SessionMetrics"]),
        .library(name: "SessionStorage", targets: ["SessionStorage"]),
        .library(name: "SessionRedis", targets: ["SessionRedis"]),
        .library(name: "SessionServer", targets: ["SessionServer"]),
        .executable(name: "sessiond", targets: ["sessiond"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .target(name: "CTokenDigest"),
        .target(
            name: "SessionCore",
            dependencies: [
                "CTokenDigest",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // GnuTLS (a dependency of libmicrohttpd-dev) holds the certificate that libmicrohttpd's TLS serves.
        .target(
            name: "CTLSIdentity",
            linkerSettings: [.linkedLibrary("gnutls")]
        ),
        .target(
            name: "MicroHTTP",
            dependencies: ["CMicroHTTPD", "CZlib", "CTLSIdentity"],
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(
            name: "SessionStorage",
            dependencies: [
                "SessionCore", "CSQLite",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // No pkgConfig: hiredis.pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses (a warning).
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "SessionRedis",
            dependencies: [
                "SessionCore", "CHiredis",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),
        .target(
            name: "SessionMetrics",
            dependencies: [
                "SessionCore", "SessionStorage", "SessionRedis",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["BuildInfoPlugin"]
        ),
        .target(
            name: "SessionServer",
            dependencies: [
                "SessionCore", "SessionMetrics", "MicroHTTP",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sessiond",
            dependencies: [
                "SessionCore", "SessionServer", "SessionMetrics", "SessionStorage", "SessionRedis", "MicroHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionCoreTests",
            dependencies: ["SessionCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionStorageTests",
            dependencies: ["SessionStorage", "SessionCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HTTPTestSupport",
            path: "Tests/HTTPTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MicroHTTPTests",
            dependencies: ["MicroHTTP", "HTTPTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionMetricsTests",
            dependencies: ["SessionMetrics", "SessionCore", .product(name: "Prometheus", package: "swift-prometheus")],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionServerTests",
            dependencies: [
                "SessionServer", "SessionCore", "SessionMetrics", "SessionStorage", "MicroHTTP", "HTTPTestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionRedisTests",
            dependencies: ["SessionRedis", "SessionCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessiondTests",
            dependencies: ["sessiond", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

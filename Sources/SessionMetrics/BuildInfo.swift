/// What `sessiond_build_info` reports: the version, the git revision and the Swift compiler, fixed
/// at build time (the revision and compiler come from `BuildInfoPlugin`).
public struct BuildInfo: Sendable, Hashable {
    /// The release of users-session-manager.
    public static let currentVersion = "0.4.0"

    public var version: String
    public var revision: String
    public var swiftVersion: String

    public init(version: String, revision: String, swiftVersion: String) {
        self.version = version
        self.revision = revision
        self.swiftVersion = swiftVersion
    }

    /// This build.
    public static let current = BuildInfo(version: currentVersion, revision: gitRevision, swiftVersion: compilerVersion)
}

import ArgumentParser
import SessionCore

/// The defaults and limits of new sessions.
struct SessionOptions: ParsableArguments {
    @Option(help: "Default idle timeout of sessions, in seconds (≥ 2; sliding).")
    var idleTimeout: Double = 3000

    @Option(help: "Default absolute lifetime of sessions, in seconds.")
    var maxLifetime: Double = 86_400

    @Option(help: "Most live sessions per user (default: unlimited).")
    var maxSessionsPerUser: Int?

    @Option(help: "At the per-user cap: reject the new session, or evict_oldest.")
    var sessionLimitPolicy = "evict_oldest"

    @Option(help: "Largest session data, in bytes of JSON.")
    var maxDataBytes = 16 * 1024

    @Option(
        help:
            "Seconds during which the token of a session that ended by timeout answers session_expired, not session_unknown (0: off)."
    )
    var expiredTokenRetention: Double = 3600

    @Option(help: "Most tokens of expired sessions remembered (about 80 bytes each; the oldest are forgotten first).")
    var expiredTokenCapacity = 100_000

    /// The store's configuration, checked.
    func storeConfiguration() throws -> SessionStore.Configuration {
        let configuration = SessionStore.Configuration(
            idleTimeout: .milliseconds(
                try OptionValue.milliseconds(idleTimeout, "--idle-timeout", within: 0...315_360_000)
            ),
            maxLifetime: .milliseconds(
                try OptionValue.milliseconds(maxLifetime, "--max-lifetime", within: 0...315_360_000)
            ),
            maxSessionsPerUser: maxSessionsPerUser,
            sessionLimitPolicy: try OptionValue.parse(
                SessionStore.SessionLimitPolicy.self,
                "--session-limit-policy",
                sessionLimitPolicy
            ),
            maxDataBytes: maxDataBytes,
            expiredTokenRetention: .milliseconds(
                try OptionValue.milliseconds(
                    expiredTokenRetention,
                    "--expired-token-retention",
                    within: 0...315_360_000
                )
            ),
            expiredTokenCapacity: expiredTokenCapacity
        )
        do {
            try configuration.validate()
        } catch {
            throw StartupError(error.message)
        }
        return configuration
    }
}

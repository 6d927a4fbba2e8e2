extension SessionStore {
    /// What to do when a user who already has ``Configuration/maxSessionsPerUser`` sessions logs in.
    public enum SessionLimitPolicy: String, Sendable, Hashable, CaseIterable {
        /// Refuse the new session (`session_limit_reached`).
        case reject
        /// End the user's oldest session (reason `evicted`) to make room.
        case evictOldest = "evict_oldest"
    }

    /// Defaults and limits of a ``SessionStore``.
    ///
    /// ```swift
    /// let store = SessionStore(configuration: .init(idleTimeout: .seconds(900), maxSessionsPerUser: 5))
    /// ```
    public struct Configuration: Sendable, Hashable {
        /// Smallest idle timeout accepted (the Node library's minimum).
        public static let minimumIdleTimeout: Duration = .seconds(2)
        /// Largest idle timeout or lifetime accepted (10 years).
        public static let maximumDuration: Duration = .seconds(10 * 365 * 86_400)

        /// Idle timeout of new sessions without their own, and of refreshes of such sessions.
        public var idleTimeout: Duration
        /// Absolute lifetime of new sessions without their own.
        public var maxLifetime: Duration
        /// Cap on live sessions per user; `nil` is unlimited.
        public var maxSessionsPerUser: Int?
        /// What happens at the cap.
        public var sessionLimitPolicy: SessionLimitPolicy
        /// Largest session data (UTF-8 bytes of the JSON value).
        public var maxDataBytes: Int
        /// Longest username in UTF-8 bytes.
        public var maxUsernameBytes: Int
        /// Number of shards (a power of two, 1...256).
        public var shardCount: Int
        /// How long a token of a session that ended by idle or absolute timeout is still answered
        /// "expired" (with the reason) rather than "unknown"; `.zero` turns this off. Fixed at creation.
        public var expiredTokenRetention: Duration
        /// The most such tokens remembered (about 80 bytes each), the oldest ending forgotten first.
        /// Fixed at creation.
        public var expiredTokenCapacity: Int

        public init(
            idleTimeout: Duration = .seconds(3000),
            maxLifetime: Duration = .seconds(86_400),
            maxSessionsPerUser: Int? = nil,
            sessionLimitPolicy: SessionLimitPolicy = .evictOldest,
            maxDataBytes: Int = 16 * 1024,
            maxUsernameBytes: Int = 256,
            shardCount: Int = 16,
            expiredTokenRetention: Duration = .seconds(3600),
            expiredTokenCapacity: Int = 100_000
        ) {
            self.idleTimeout = idleTimeout
            self.maxLifetime = maxLifetime
            self.maxSessionsPerUser = maxSessionsPerUser
            self.sessionLimitPolicy = sessionLimitPolicy
            self.maxDataBytes = maxDataBytes
            self.maxUsernameBytes = maxUsernameBytes
            self.shardCount = shardCount
            self.expiredTokenRetention = expiredTokenRetention
            self.expiredTokenCapacity = expiredTokenCapacity
        }

        /// Throws ``SessionError`` (`invalid_timeout` / `invalid_argument`) when a value is out of range.
        public func validate() throws(SessionError) {
            try Self.checkIdleTimeout(idleTimeout)
            try Self.checkLifetime(maxLifetime)
            if let cap = maxSessionsPerUser, cap < 1 {
                throw SessionError(code: .invalidArgument, message: "maxSessionsPerUser must be at least 1")
            }
            guard maxDataBytes >= 2, maxDataBytes <= 16 * 1024 * 1024 else {
                throw SessionError(code: .invalidArgument, message: "maxDataBytes must be between 2 and 16777216")
            }
            guard maxUsernameBytes >= 1, maxUsernameBytes <= 4096 else {
                throw SessionError(code: .invalidArgument, message: "maxUsernameBytes must be between 1 and 4096")
            }
            guard shardCount >= 1, shardCount <= 256, shardCount & (shardCount - 1) == 0 else {
                throw SessionError(code: .invalidArgument, message: "shardCount must be a power of two in 1...256")
            }
            guard expiredTokenRetention >= .zero, expiredTokenRetention <= Self.maximumDuration else {
                throw SessionError(
                    code: .invalidArgument,
                    message: "expiredTokenRetention must be between 0 and 10 years"
                )
            }
            guard expiredTokenCapacity >= 0, expiredTokenCapacity <= 100_000_000 else {
                throw SessionError(
                    code: .invalidArgument,
                    message: "expiredTokenCapacity must be between 0 and 100000000"
                )
            }
        }

        /// Throws `invalid_timeout` unless `value` is an acceptable idle timeout.
        public static func checkIdleTimeout(_ value: Duration) throws(SessionError) {
            guard value >= minimumIdleTimeout, value <= maximumDuration else {
                throw SessionError(
                    code: .invalidTimeout,
                    message: "idle timeout must be between 2 and \(maximumDuration.components.seconds) seconds"
                )
            }
        }

        /// Throws `invalid_timeout` unless `value` is an acceptable lifetime.
        public static func checkLifetime(_ value: Duration) throws(SessionError) {
            guard value >= minimumIdleTimeout, value <= maximumDuration else {
                throw SessionError(
                    code: .invalidTimeout,
                    message: "max lifetime must be between 2 and \(maximumDuration.components.seconds) seconds"
                )
            }
        }
    }
}

extension SessionStorage {
    /// When a write is acknowledged.
    public enum Durability: String, Sendable, Hashable, CaseIterable {
        /// After the commit that holds it (group commit, fsync): nothing acknowledged is lost, even
        /// on `kill -9` or power loss. The default.
        case commit
        /// At once; committed at least every ``Configuration/commitInterval`` (100 ms): a crash can
        /// lose the last interval's changes.
        case interval
    }

    /// Where and how sessions are stored.
    ///
    /// ```swift
    /// let storage = try SessionStorage(configuration: .init(dataDirectory: "/var/lib/sessiond"))
    /// ```
    public struct Configuration: Sendable {
        /// The directory holding `sessions.sqlite3` (created if missing and its parent exists).
        public var dataDirectory: String
        /// When writes are acknowledged.
        public var durability: Durability
        /// Longest time between commits in `interval` mode.
        public var commitInterval: Duration
        /// A slide of the idle deadline is written when `lastSeenAt` crosses a multiple of
        /// idleTimeout / `slideStepDivisor` (at least one second): after a crash a session can expire
        /// up to that much early, never late.
        public var slideStepDivisor: Int64
        /// Wait between attempts to commit after a failure (disk full, I/O error).
        public var retryInterval: Duration

        public init(
            dataDirectory: String = "./data",
            durability: Durability = .commit,
            commitInterval: Duration = .milliseconds(100),
            slideStepDivisor: Int64 = 10,
            retryInterval: Duration = .milliseconds(500)
        ) {
            self.dataDirectory = dataDirectory
            self.durability = durability
            self.commitInterval = commitInterval
            self.slideStepDivisor = max(1, slideStepDivisor)
            self.retryInterval = retryInterval
        }
    }
}

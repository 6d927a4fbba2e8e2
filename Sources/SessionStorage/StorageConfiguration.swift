extension SessionStorage {
    /// When a write is acknowledged, and what it survives.
    public enum Durability: String, Sendable, Hashable, CaseIterable {
        /// After the commit that holds it has been written to the operating system (group commit;
        /// SQLite `synchronous = NORMAL` in WAL mode): nothing acknowledged is lost when the process
        /// crashes or is killed (`kill -9`). The log is flushed to the disk at least every
        /// ``Configuration/syncInterval`` (250 ms), which bounds what a power loss or kernel crash can
        /// take. The default.
        case commit
        /// After the commit that holds it has been flushed to the disk (`fsync`, SQLite
        /// `synchronous = FULL`): survives power loss too, at the cost of one disk flush per group
        /// commit.
        case fsync
        /// At once; committed at least every ``Configuration/commitInterval`` (100 ms): a crash can
        /// lose the last interval's changes.
        case interval

        /// Whether a write is answered only after its commit.
        public var acknowledgesAfterCommit: Bool { self != .interval }
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
        /// Longest time committed changes stay in the operating system's cache before the
        /// write-ahead log is flushed to the disk (a passive checkpoint), in `commit` and `interval`
        /// modes.
        public var syncInterval: Duration
        /// Group commit in `commit` and `fsync` modes: when the previous commit held more than one
        /// change (several clients are writing), the writer waits up to this long, or until
        /// ``commitGatherTarget`` changes are pending, before it commits, so that one transaction
        /// carries more of them. A lone writer is never delayed. `.zero` commits at once.
        public var commitGatherWindow: Duration
        /// See ``commitGatherWindow``.
        public var commitGatherTarget: Int

        public init(
            dataDirectory: String = "./data",
            durability: Durability = .commit,
            commitInterval: Duration = .milliseconds(100),
            slideStepDivisor: Int64 = 10,
            retryInterval: Duration = .milliseconds(500),
            syncInterval: Duration = .milliseconds(250),
            commitGatherWindow: Duration = .microseconds(250),
            commitGatherTarget: Int = 32
        ) {
            self.dataDirectory = dataDirectory
            self.durability = durability
            self.commitInterval = commitInterval
            self.slideStepDivisor = max(1, slideStepDivisor)
            self.retryInterval = retryInterval
            self.syncInterval = syncInterval
            self.commitGatherWindow = commitGatherWindow
            self.commitGatherTarget = max(1, commitGatherTarget)
        }
    }
}

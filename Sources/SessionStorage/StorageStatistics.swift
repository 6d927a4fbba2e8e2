import SessionCore

/// Counts for metrics, read at scrape time: exact, cumulative since the storage opened.
public struct StorageStatistics: Sendable, Hashable {
    /// Rows written by committed transactions: `upsert` (create, data, rotate), `touch` (slides),
    /// `remove` (logout, revocation, eviction, expiry).
    public var upserts = 0
    public var touches = 0
    public var removes = 0
    /// Successful commits.
    public var commits = 0
    /// Failed commits and other storage errors, by code.
    public var errors: [StorageError.Code: Int] = [:]
    /// Changes recorded but not yet committed.
    public var pendingChanges = 0
    /// How long the oldest change not yet committed has waited (`nil` when all are committed). It
    /// grows while commits fail, and also while one hangs (a stalled disk), when ``isWritable`` stays
    /// `true`.
    public var uncommittedAge: Duration?
    /// `false` while the last commit failed (writes are refused until one succeeds).
    public var isWritable = true
    /// Size of the database file plus its write-ahead log, in bytes, measured by the writer thread
    /// when it starts and then at most once a second (0 before ``SessionStorage/start()``).
    public var fileBytes: Int64 = 0
    /// The replay at startup, once done.
    public var replay: ReplayReport?

    public init() {}
}

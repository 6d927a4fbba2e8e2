/// One commit attempt, as reported to the storage's commit observer (for histograms).
public struct CommitReport: Sendable, Hashable {
    /// Changes in the batch.
    public var changes: Int
    /// Time from `BEGIN` to the end of `COMMIT` (including the fsync).
    public var duration: Duration
    /// `nil` when the commit succeeded.
    public var error: StorageError.Code?

    public init(changes: Int, duration: Duration, error: StorageError.Code?) {
        self.changes = changes
        self.duration = duration
        self.error = error
    }
}

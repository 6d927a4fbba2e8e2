import SessionCore

/// What startup found in storage and put back into the store.
public struct ReplayReport: Sendable, Hashable {
    /// Sessions live again, with their remaining deadlines.
    public var restored = 0
    /// Sessions whose deadline passed while the service was down: ended (counted once, by
    /// reason) and deleted from the file.
    public var expired: [SessionEndReason: Int] = [:]
    /// Rows that could not be restored (undecodable, invalid username, id or token clash).
    public var skipped = 0
    /// Time taken to read, restore and clean up.
    public var duration: Duration = .zero
    /// `false` when the previous run did not shut down cleanly (a crash or `kill -9`).
    public var previousShutdownWasClean = true
    /// The schema version the file was migrated from, if it was.
    public var migratedFromVersion: Int?
    /// `true` when the database file was created by this start.
    public var createdFile = false

    public init() {}

    /// All expired sessions.
    public var expiredCount: Int { expired.values.reduce(0, +) }
}

/// One change to the session table, as a ``SessionJournal`` receives it.
///
/// Every change names its session by id and creation time: storage can keep rows in creation order
/// (new sessions are appended, not scattered) and still find a row without a second index.
public enum SessionChange: Sendable, Hashable {
    /// A session was created, or its data or token changed: the whole row.
    case upsert(SessionRecord)
    /// A session was used: its idle deadline moved. Coalesced (see ``SessionJournal/slideStep(idleTimeout:)``).
    case touch(id: SessionID, createdAt: Int64, lastSeenAt: Int64, idleTimeout: Int64)
    /// A session ended (logout, revocation, eviction or expiry).
    case remove(id: SessionID, createdAt: Int64, reason: SessionEndReason)

    /// The session the change is about.
    public var id: SessionID {
        switch self {
        case .upsert(let record): record.id
        case .touch(let id, _, _, _), .remove(let id, _, _): id
        }
    }
}

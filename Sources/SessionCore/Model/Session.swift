/// A snapshot of one session, as returned by the store. Never contains the token.
public struct Session: Sendable, Hashable {
    /// The public id.
    public var id: SessionID
    /// The user the session belongs to.
    public var username: String
    /// When the session was created.
    public var createdAt: SessionTimestamp
    /// When the session was last validated or refreshed (creation counts).
    public var lastSeenAt: SessionTimestamp
    /// When the session ends unless it is used again (sliding).
    public var idleExpiresAt: SessionTimestamp
    /// When the session ends whatever happens (absolute lifetime; never moves).
    public var expiresAt: SessionTimestamp
    /// The idle timeout that applies to this session.
    public var idleTimeout: Duration
    /// The session's JSON data, as the UTF-8 bytes that were stored, or `nil` when it has none.
    public var data: [UInt8]?

    public init(
        id: SessionID,
        username: String,
        createdAt: SessionTimestamp,
        lastSeenAt: SessionTimestamp,
        idleExpiresAt: SessionTimestamp,
        expiresAt: SessionTimestamp,
        idleTimeout: Duration,
        data: [UInt8]?
    ) {
        self.id = id
        self.username = username
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.idleExpiresAt = idleExpiresAt
        self.expiresAt = expiresAt
        self.idleTimeout = idleTimeout
        self.data = data
    }

    /// The earlier of the two deadlines.
    public var effectiveExpiresAt: SessionTimestamp { min(idleExpiresAt, expiresAt) }
}

/// The result of ``SessionStore/create(username:data:idleTimeout:maxLifetime:)`` and
/// ``SessionStore/rotate(token:)``: the session and its token. This is the only place a token appears.
public struct CreatedSession: Sendable {
    public var session: Session
    public var token: SessionToken

    public init(session: Session, token: SessionToken) {
        self.session = session
        self.token = token
    }
}

/// The answer to a token validation. A bad token is a value, never a thrown error or a crash.
public enum SessionValidation: Sendable, Hashable {
    /// The session is live; with `refresh`, its idle deadline has moved.
    case valid(Session)
    /// No session has this token (never issued, logged out, revoked, or already removed).
    case unknown
    /// The session passed a deadline; it has now been ended with this reason.
    case expired(SessionEndReason)
    /// The token is not shaped like a token.
    case malformed

    /// The session when valid.
    public var session: Session? {
        if case .valid(let session) = self { return session }
        return nil
    }
}

/// A user with at least one live session.
public struct LoggedInUser: Sendable, Hashable {
    public var username: String
    public var sessionCount: Int

    public init(username: String, sessionCount: Int) {
        self.username = username
        self.sessionCount = sessionCount
    }
}

/// One page of a listing; `nextCursor` is `nil` on the last page.
public struct Page<Element: Sendable>: Sendable {
    public var items: [Element]
    public var nextCursor: String?

    public init(items: [Element], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

/// Why a session ended.
public enum SessionEndReason: String, Sendable, Hashable, CaseIterable {
    /// The client logged out with its token.
    case logout
    /// An operator revoked it (by id, all of a user's sessions, or delete-all).
    case revoked
    /// The per-user session cap evicted it to make room for a newer session.
    case evicted
    /// Nobody used it for longer than its idle timeout.
    case idleTimeout = "idle_timeout"
    /// It reached its absolute lifetime.
    case absoluteTimeout = "absolute_timeout"

    /// `true` for the two timeouts.
    public var isExpiry: Bool { self == .idleTimeout || self == .absoluteTimeout }
}

/// Something that happened to a session. Carries the public id and username, never the token.
public struct SessionEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case created
        case ended(SessionEndReason)
    }

    public var kind: Kind
    public var id: SessionID
    public var username: String
    public var createdAt: SessionTimestamp
    /// When it happened: the creation time, or the time the session ended.
    public var at: SessionTimestamp

    public init(kind: Kind, id: SessionID, username: String, createdAt: SessionTimestamp, at: SessionTimestamp) {
        self.kind = kind
        self.id = id
        self.username = username
        self.createdAt = createdAt
        self.at = at
    }

    /// How long the session lived, for `ended` events (zero for `created`).
    public var lifetime: Duration {
        .milliseconds(at.millisecondsSinceEpoch - createdAt.millisecondsSinceEpoch)
    }
}

/// A session in its durable form: what a ``SessionJournal`` receives and what
/// ``SessionStore/restore(_:)`` takes back after a restart. Never contains the token, only its hash.
///
/// Times are milliseconds since the Unix epoch.
public struct SessionRecord: Sendable, Hashable {
    /// The public id.
    public var id: SessionID
    /// SHA-256 of the token.
    public var tokenHash: TokenHash
    /// The user the session belongs to.
    public var username: String
    /// When the session was created.
    public var createdAt: Int64
    /// When the session was last validated or refreshed, as far as the journal has been told: slides
    /// are coalesced, so this may lag the live value by up to the journal's slide step.
    public var lastSeenAt: Int64
    /// The absolute deadline.
    public var expiresAt: Int64
    /// The idle timeout in milliseconds; negative when the session follows the store's default (the
    /// magnitude is the default that applied at its last refresh).
    public var idleTimeout: Int64
    /// The session's JSON data, or `nil`.
    public var data: [UInt8]?

    public init(
        id: SessionID,
        tokenHash: TokenHash,
        username: String,
        createdAt: Int64,
        lastSeenAt: Int64,
        expiresAt: Int64,
        idleTimeout: Int64,
        data: [UInt8]?
    ) {
        self.id = id
        self.tokenHash = tokenHash
        self.username = username
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
        self.idleTimeout = idleTimeout
        self.data = data
    }

    /// The latest time a record may hold: 9999-12-31T23:59:59.999Z, in milliseconds.
    public static let latestTime: Int64 = 253_402_300_799_999

    /// Whether the record's times can be a session's: every time and the idle timeout's magnitude
    /// within 0 ... ``latestTime``, so that no deadline computed from them can overflow. A record
    /// read back from a damaged file may fail it; ``SessionStore/restore(_:)`` skips such records.
    public var hasPlausibleTimes: Bool {
        let range: ClosedRange<Int64> = 0...Self.latestTime
        return range.contains(createdAt) && range.contains(lastSeenAt) && range.contains(expiresAt)
            && idleTimeout != .min && range.contains(idleTimeout < 0 ? -idleTimeout : idleTimeout)
    }

    /// The earliest deadline and the reason the session would end at it (absolute wins ties).
    public var deadline: (at: Int64, reason: SessionEndReason) {
        Self.deadline(lastSeenAt: lastSeenAt, idleTimeout: idleTimeout, expiresAt: expiresAt)
    }

    /// The deadline rule shared by live entries and records: the idle deadline (`lastSeenAt` plus
    /// the magnitude of `idleTimeout`) or the absolute one, whichever comes first; absolute wins ties.
    static func deadline(
        lastSeenAt: Int64,
        idleTimeout: Int64,
        expiresAt: Int64
    ) -> (at: Int64, reason: SessionEndReason) {
        let idle = lastSeenAt + (idleTimeout < 0 ? -idleTimeout : idleTimeout)
        return idle < expiresAt ? (idle, .idleTimeout) : (expiresAt, .absoluteTimeout)
    }
}

/// One session as a shard stores it: 128 bytes (two cache lines), no token.
///
/// `userPrev`/`userNext` link the sessions of one user in creation order; `wheelPrev`/`wheelNext`
/// link the sessions scheduled in one expiry bucket. `-1` ends a list. A free slot has `userSlot == -1`.
///
/// `username` is the user record's own string (shared storage, one reference more), kept here so that
/// answering a validation reads the name straight from the entry: with a million sessions each
/// random memory access costs about 250 ns on this machine (Benchmarks/RESULTS.md), and this turns
/// the chain entry → user record → name into two accesses that overlap.
struct SessionEntry {
    var hash: TokenHash
    var id: SessionID
    var username: String
    var createdAt: Int64
    var lastSeenAt: Int64
    /// Absolute deadline (never moves).
    var expiresAt: Int64
    /// Idle timeout in milliseconds; negative when it follows the store's default (magnitude = the
    /// default stamped at the last refresh).
    var idleTimeout: Int64
    var data: [UInt8]?
    var userSlot: Int32
    var userPrev: Int32
    var userNext: Int32
    var wheelPrev: Int32
    var wheelNext: Int32
    var wheelBucket: UInt32

    static let free = SessionEntry(
        hash: .zero,
        id: SessionID(w0: 0, w1: 0),
        username: "",
        createdAt: 0,
        lastSeenAt: 0,
        expiresAt: 0,
        idleTimeout: 0,
        data: nil,
        userSlot: -1,
        userPrev: -1,
        userNext: -1,
        wheelPrev: -1,
        wheelNext: -1,
        wheelBucket: 0
    )

    var isLive: Bool { userSlot >= 0 }
    var idleTimeoutMilliseconds: Int64 { idleTimeout < 0 ? -idleTimeout : idleTimeout }
    var idleExpiresAt: Int64 { lastSeenAt + idleTimeoutMilliseconds }

    /// The earliest deadline and the reason the session would end at it (absolute wins ties).
    var deadline: (at: Int64, reason: SessionEndReason) {
        SessionRecord.deadline(lastSeenAt: lastSeenAt, idleTimeout: idleTimeout, expiresAt: expiresAt)
    }
}

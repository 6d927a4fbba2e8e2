import DequeModule

/// The tokens of sessions that ended by idle or absolute timeout recently, so that presenting one
/// answers "expired" (with the reason) instead of "unknown" for ``retention`` after the end.
///
/// At most ``capacity`` tokens are kept, the oldest ending forgotten first; each costs about 80 bytes
/// (a dictionary entry and a queue entry). Only the token's SHA-256 is kept, like everywhere else.
/// Not thread-safe: each ``TokenIndexShard`` keeps one behind its own lock.
struct ExpiredTokens {
    private struct Entry {
        var w1: UInt64
        var reason: SessionEndReason
        var endedAt: Int64
    }

    private var entries: [UInt64: Entry] = [:]
    /// Keys in the order they were added (their endings are, nearly, in that order too).
    private var order = Deque<(key: UInt64, endedAt: Int64)>()
    let retention: Int64
    let capacity: Int

    /// - Parameters:
    ///   - retention: how long after its end a token is remembered, in milliseconds (0: never).
    ///   - capacity: the most tokens remembered.
    init(retention: Int64, capacity: Int) {
        self.retention = retention
        self.capacity = capacity
    }

    var count: Int { entries.count }

    /// Remembers that the session with token hash `hash` ended at `endedAt` for `reason`.
    mutating func insert(_ hash: TokenHash, reason: SessionEndReason, endedAt: Int64, now: Int64) {
        guard retention > 0, capacity > 0, now - endedAt < retention else { return }
        entries[hash.w0] = Entry(w1: hash.w1, reason: reason, endedAt: endedAt)
        order.append((hash.w0, endedAt))
        prune(now: now)
    }

    /// The reason the session with this token ended, if it ended by timeout within ``retention``.
    func reason(for hash: TokenHash, now: Int64) -> SessionEndReason? {
        guard let entry = entries[hash.w0], entry.w1 == hash.w1, now - entry.endedAt < retention else { return nil }
        return entry.reason
    }

    /// Forgets the tokens past ``retention``, and the oldest beyond ``capacity``.
    mutating func prune(now: Int64) {
        while let oldest = order.first, order.count > capacity || now - oldest.endedAt >= retention {
            order.removeFirst()
            if entries[oldest.key]?.endedAt == oldest.endedAt { entries.removeValue(forKey: oldest.key) }
        }
    }
}

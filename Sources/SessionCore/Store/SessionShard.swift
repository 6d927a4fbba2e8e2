import Synchronization

/// One shard of the session table: its state behind a mutex.
final class SessionShard: Sendable {
    let state: Mutex<ShardState>

    init(index: Int, wheelEpoch: Int64, tokenShards: [TokenIndexShard]) {
        state = Mutex(ShardState(shardIndex: index, wheelEpoch: wheelEpoch, tokenShards: tokenShards))
    }
}

/// One shard of the token index: the first 64 bits of SHA-256(token) → (session shard, slot).
/// The shard is chosen by the word's low bits, the bucket inside it by its high bits.
///
/// The index is a lookup aid only; every hit is verified against the full hash stored with the
/// session, so a stale entry can only ever answer "unknown".
final class TokenIndexShard: Sendable {
    let map = Mutex(CompactIndex())
    /// The tokens of this shard's sessions that ended by timeout recently.
    private let expired: Mutex<ExpiredTokens>
    let unknownValidations = Atomic<Int>(0)
    /// Validations answered "expired" from ``expired`` (the session had already been removed).
    let expiredValidations = Atomic<Int>(0)

    /// How many tokens ``expired`` holds, readable without its lock: while it holds none, an unknown
    /// token costs no lock.
    private let expiredCount = Atomic<Int>(0)

    init(expiredRetention: Int64, expiredCapacity: Int) {
        expired = Mutex(ExpiredTokens(retention: expiredRetention, capacity: expiredCapacity))
    }

    /// Remembers the token of a session that ended at `endedAt` for `reason` (a timeout).
    func rememberExpired(_ hash: TokenHash, reason: SessionEndReason, endedAt: Int64, now: Int64) {
        expired.withLock { tokens in
            tokens.insert(hash, reason: reason, endedAt: endedAt, now: now)
            expiredCount.store(tokens.count, ordering: .releasing)
        }
    }

    /// Why the session with this token ended, if it ended by timeout recently.
    func expiredReason(of hash: TokenHash, now: @autoclosure () -> Int64) -> SessionEndReason? {
        guard expiredCount.load(ordering: .acquiring) > 0 else { return nil }
        let now = now()
        return expired.withLock { $0.reason(for: hash, now: now) }
    }

    /// Forgets the tokens past their retention.
    func pruneExpired(now: Int64) {
        expired.withLock { tokens in
            tokens.prune(now: now)
            expiredCount.store(tokens.count, ordering: .releasing)
        }
    }

    static func pack(shard: Int, slot: Int32) -> UInt32 { UInt32(shard) << 24 | UInt32(slot) }
    static func unpack(_ value: UInt32) -> (shard: Int, slot: Int32) { (Int(value >> 24), Int32(value & 0xFF_FFFF)) }
}

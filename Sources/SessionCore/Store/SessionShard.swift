import Synchronization

/// One shard of the session table: its state behind a mutex.
final class SessionShard: Sendable {
    let state: Mutex<ShardState>

    init(index: Int, wheelEpoch: Int64) {
        state = Mutex(ShardState(shardIndex: index, wheelEpoch: wheelEpoch))
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
    let expired: Mutex<ExpiredTokens>
    let unknownValidations = Atomic<Int>(0)
    /// Validations answered "expired" from ``expired`` (the session had already been removed).
    let expiredValidations = Atomic<Int>(0)

    init(expiredRetention: Int64, expiredCapacity: Int) {
        expired = Mutex(ExpiredTokens(retention: expiredRetention, capacity: expiredCapacity))
    }

    static func pack(shard: Int, slot: Int32) -> UInt32 { UInt32(shard) << 24 | UInt32(slot) }
    static func unpack(_ value: UInt32) -> (shard: Int, slot: Int32) { (Int(value >> 24), Int32(value & 0xFF_FFFF)) }
}

/// What ``RedisClient`` has seen, for the `sessiond_redis_*` metrics.
public struct RedisClientStatistics: Sendable, Hashable {
    /// Whether the last attempt to reach Redis succeeded.
    public var isUp = false
    /// Commands that got no answer, by kind.
    public var errors: [RedisClientError.Code: Int] = [:]
    /// Connections opened again after one failed.
    public var reconnects = 0

    public init() {}
}

extension RedisClientStatistics {
    /// Adds `other`'s counts (not its ``isUp``).
    mutating func add(_ other: RedisClientStatistics) {
        for (code, count) in other.errors { errors[code, default: 0] += count }
        reconnects += other.reconnects
    }
}

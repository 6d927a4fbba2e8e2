/// What sessiond found when it opened a Redis store: for the startup line and the metrics.
public struct RedisStoreDescription: Sendable, Hashable {
    /// The store's id, kept in Redis (`sd:meta`): the `store` label of the store gauges.
    public var id: String
    /// The number of partitions, fixed when the store was created.
    public var partitions: Int
    /// Whether this start created the store.
    public var isNew: Bool
    /// `redis_version` of the server.
    public var redisVersion: String
    /// The server's `maxmemory-policy` (always `noeviction`: sessiond refuses to start otherwise).
    public var maxmemoryPolicy: String
    /// How the server persists writes: `aof appendfsync=always`, `aof appendfsync=everysec`,
    /// `rdb only`, `none` (`unknown` when it cannot be read).
    public var persistence: String
    /// The primaries serving the store: 1 for one server, the cluster's primaries otherwise.
    public var primaries: Int = 1
    /// Whether the store is on a Redis Cluster.
    public var isCluster = false
    /// Whether some primary of the cluster has `cluster-require-full-coverage yes` (Redis's default):
    /// while one primary is down, before its replica takes over, that node refuses every command,
    /// so sessions of every partition fail, not only those of the lost primary's slots.
    public var requiresFullCoverage = false
}

/// Why a Redis store cannot be used, naming the setting or step at fault.
public struct RedisStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

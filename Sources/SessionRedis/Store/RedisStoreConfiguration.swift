import SessionCore

/// How sessiond keeps its sessions in Redis (`--storage redis`).
public struct RedisStoreConfiguration: Sendable {
    /// How to reach Redis (the endpoint is the first seed).
    public var client: RedisClientConfiguration
    /// Every node named by `--redis-url`: one server, or seed nodes of a Redis Cluster (the first that
    /// answers tells which, by `cluster_enabled`).
    public var seeds: [RedisEndpoint]
    /// Replicas that must confirm each write (`WAIT`) before it is acknowledged; 0 does not wait.
    public var waitReplicas: Int
    /// The number of partitions of a store created now (an existing store keeps its own). Each user's
    /// sessions live in one partition, whose keys share one Redis Cluster slot.
    public var partitions: Int
    /// Events kept in each partition's stream (approximately: `XADD … MAXLEN ~`).
    public var eventsKeptPerPartition: Int
    /// How long the token of a session ended by timeout answers `session_expired`.
    public var expiredTokenRetention: Duration
    /// The longest username accepted, in UTF-8 bytes.
    public var maxUsernameBytes: Int
    /// The defaults and limits written to the store at start (they then apply to every instance).
    public var sessionDefaults: SessionStore.Configuration

    public init(
        client: RedisClientConfiguration,
        seeds: [RedisEndpoint]? = nil,
        waitReplicas: Int = 0,
        partitions: Int = 128,
        eventsKeptPerPartition: Int = 1000,
        expiredTokenRetention: Duration = .seconds(3600),
        maxUsernameBytes: Int = 256,
        sessionDefaults: SessionStore.Configuration = .init()
    ) {
        self.client = client
        self.seeds = seeds ?? [client.endpoint]
        self.waitReplicas = waitReplicas
        self.partitions = partitions
        self.eventsKeptPerPartition = eventsKeptPerPartition
        self.expiredTokenRetention = expiredTokenRetention
        self.maxUsernameBytes = maxUsernameBytes
        self.sessionDefaults = sessionDefaults
    }
}

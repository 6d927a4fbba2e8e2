/// How ``RedisClient`` reaches Redis.
public struct RedisClientConfiguration: Sendable, Hashable {
    /// Where Redis listens and how to log in.
    public var endpoint: RedisEndpoint
    /// The longest a command may wait for its answer, queueing included; also the connect timeout.
    /// Past it the command fails with ``RedisClientError/Code/timeout``.
    public var timeout: Duration
    /// Connections, each with its own thread: while one waits for a batch of answers, another sends
    /// the next batch.
    public var connections: Int
    /// The most commands sent in one batch (one write, then their answers in order).
    public var maximumBatch: Int

    public init(
        endpoint: RedisEndpoint,
        timeout: Duration = .milliseconds(250),
        connections: Int = 2,
        maximumBatch: Int = 256
    ) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.connections = connections
        self.maximumBatch = maximumBatch
    }
}

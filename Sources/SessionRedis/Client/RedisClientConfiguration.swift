/// How ``RedisClient`` reaches Redis.
public struct RedisClientConfiguration: Sendable, Hashable {
    /// Where Redis listens and how to log in.
    public var endpoint: RedisEndpoint
    /// The longest a command may wait for its answer, queueing included; also the connect timeout.
    /// Past it the command fails with ``RedisClientError/Code/timeout``.
    public var timeout: Duration
    /// Connections, each with its own reader thread. One connection batches best (the commands
    /// queued while answers are on their way leave in one write); more spread the decoding of
    /// answers over more threads, so a large answer holds up fewer others.
    public var connections: Int

    public init(
        endpoint: RedisEndpoint,
        timeout: Duration = .milliseconds(250),
        connections: Int = 1
    ) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.connections = connections
    }
}

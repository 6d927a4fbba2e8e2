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
    /// Replicas that must hold a write sent with ``RedisClient/sendConfirmed(_:completion:)`` before
    /// it is answered (`WAIT`); 0 confirms nothing. Above 0, such writes get a connection of their
    /// own, so the other commands never queue behind a `WAIT`.
    public var confirmingReplicas: Int
    /// The longest a `WAIT` waits for the replicas before the writes it settles fail with
    /// ``RedisClientError/Code/unconfirmed``. By default a quarter of the timeout, at most 100 ms (a
    /// replica that keeps up confirms within a round trip).
    public var confirmationWait: Duration

    public init(
        endpoint: RedisEndpoint,
        timeout: Duration = .milliseconds(250),
        connections: Int = 1,
        confirmingReplicas: Int = 0,
        confirmationWait: Duration? = nil
    ) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.connections = connections
        self.confirmingReplicas = confirmingReplicas
        self.confirmationWait = max(.milliseconds(1), confirmationWait ?? min(.milliseconds(100), timeout / 4))
    }
}

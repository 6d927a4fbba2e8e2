import Dispatch
import Synchronization

/// What the store needs of a connection to Redis, one server (``RedisClient``) or a Redis Cluster
/// (``RedisClusterClient``): commands answered through completions, never waiting on the caller's
/// thread, and failing closed.
public protocol RedisCommandSender: AnyObject, Sendable {
    /// Sends one command; `completion` gets its answer (an error reply is a successful
    /// ``RedisValue/error(_:)``), or why there is none.
    func send(_ arguments: [[UInt8]], completion: @escaping RedisClient.Completion)

    /// Sends several commands together, in one write to one server (on a cluster, the server of the
    /// first command that has a key: every command must live in that slot); `completion` gets their
    /// answers in order once every one is known.
    func sendPipelined(
        _ commands: [[[UInt8]]],
        completion: @escaping @Sendable ([Result<RedisValue, RedisClientError>]) -> Void
    )

    /// Sends a write that replicas must confirm before it is answered
    /// (``RedisClientConfiguration/confirmingReplicas``; see ``RedisConfirmedWrite``): to the server
    /// of its key, on that server's connection for such writes. Fails with
    /// ``RedisClientError/Code/unconfirmed`` when too few replicas confirmed it in time.
    func sendConfirmed(_ arguments: [[UInt8]], completion: @escaping RedisClient.Completion)

    /// Sends a command without keys (`FUNCTION LOAD`, `INFO`, `CONFIG GET`) to every primary and
    /// waits for each answer: for startup.
    func sendToEveryPrimaryAndWait(_ arguments: [[UInt8]]) -> [Result<RedisValue, RedisClientError>]

    /// The server `command` goes to (on a cluster, the primary of its key's slot as last known).
    func server(of command: [[UInt8]]) -> RedisEndpoint?

    /// Whether every primary can be reached.
    var isUp: Bool { get }

    /// Whether some primary can be reached: the store can serve the partitions it holds (on one
    /// server, the same as ``isUp``).
    var isReachable: Bool { get }

    /// Counts so far, summed over the servers.
    var statistics: RedisClientStatistics { get }

    /// Counts an error reply a caller could not use.
    func recordErrorReply()

    /// Counts a failure the caller found (``RedisClientError/Code/unconfirmed``).
    func recordError(_ code: RedisClientError.Code)

    /// Where the client connects, for messages (never with a password).
    var endpointDescription: String { get }

    /// Closes the connections; what waits for an answer fails.
    func close()
}

extension RedisCommandSender {
    /// Sends one command of text arguments.
    public func send(_ arguments: [String], completion: @escaping RedisClient.Completion) {
        send(arguments.map { Array($0.utf8) }, completion: completion)
    }

    /// Sends several commands at once (each to its own server); `completion` gets their answers in
    /// order once every one is known.
    public func sendAll(
        _ commands: [[[UInt8]]],
        completion: @escaping @Sendable ([Result<RedisValue, RedisClientError>]) -> Void
    ) {
        guard !commands.isEmpty else { return completion([]) }
        let collector = RedisResultCollector(count: commands.count, completion: completion)
        for (index, command) in commands.enumerated() {
            send(command) { collector.set(index, $0) }
        }
    }

    /// Sends one command and waits for its answer: for startup and tests, never on a thread that
    /// serves requests.
    public func sendAndWait(_ arguments: [[UInt8]]) -> Result<RedisValue, RedisClientError> {
        sendAllAndWait([arguments])[0]
    }

    /// Same as ``sendAndWait(_:)-(_)`` with text arguments.
    public func sendAndWait(_ arguments: [String]) -> Result<RedisValue, RedisClientError> {
        sendAndWait(arguments.map { Array($0.utf8) })
    }

    /// ``sendAll(_:completion:)``, waiting: for startup and tests.
    public func sendAllAndWait(_ commands: [[[UInt8]]]) -> [Result<RedisValue, RedisClientError>] {
        Self.wait { done in sendAll(commands, completion: done) }
    }

    /// ``sendPipelined(_:completion:)``, waiting: for the event tail's thread, startup and tests.
    public func sendPipelinedAndWait(_ commands: [[[UInt8]]]) -> [Result<RedisValue, RedisClientError>] {
        Self.wait { done in sendPipelined(commands, completion: done) }
    }

    private static func wait(
        _ start: (@escaping @Sendable ([Result<RedisValue, RedisClientError>]) -> Void) -> Void
    ) -> [Result<RedisValue, RedisClientError>] {
        let done = DispatchSemaphore(value: 0)
        let box = Mutex<[Result<RedisValue, RedisClientError>]>([])
        start { results in
            box.withLock { $0 = results }
            done.signal()
        }
        done.wait()
        return box.withLock { $0 }
    }
}

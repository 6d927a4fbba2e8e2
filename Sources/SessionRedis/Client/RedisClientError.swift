/// Why ``RedisClient`` could not get an answer from Redis. An error *reply* (`-ERR …`) is not one of
/// these: it is a ``RedisValue/error(_:)``, and the connection stays usable.
public struct RedisClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable, machine-readable kind, also the `error` label of `sessiond_redis_errors_total`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// No connection could be opened (refused, unreachable, name not resolved, AUTH or SELECT
        /// refused).
        public static let connect = Code("connect")
        /// No answer within the timeout (the connection is dropped and opened again).
        public static let timeout = Code("timeout")
        /// The connection failed while the command was sent or its answer read.
        public static let io = Code("io")
        /// Redis answered something the caller did not expect (a protocol error, a script error).
        public static let reply = Code("reply")
        /// The client is closed.
        public static let closed = Code("closed")
        /// A write was carried out but fewer replicas than `--redis-wait-replicas` confirmed it in
        /// time (`WAIT`), so it was not acknowledged.
        public static let unconfirmed = Code("unconfirmed")

        /// Every code, for pre-created metric series.
        public static let all: [Code] = [.connect, .timeout, .io, .reply, .closed, .unconfirmed]
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

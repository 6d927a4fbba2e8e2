/// A small HTTP/1.1 server over libmicrohttpd.
///
/// The server listens as soon as it is created; handlers run synchronously on libmicrohttpd's worker
/// threads (epoll, one loop per thread). Call ``shutdown(gracePeriod:)`` to stop it; dropping the last
/// reference stops it immediately.
///
/// ```swift
/// let server = try HTTPServer(configuration: .init(port: 0)) { request in
///     .text("hello \(request.path)\n")
/// }
/// print("listening on", server.port)
/// // ...
/// server.shutdown(gracePeriod: .seconds(5))
/// ```
///
/// Signals: the worker threads inherit the signal mask of the thread that creates the server. To handle
/// SIGINT/SIGTERM in one place, block them (`pthread_sigmask`) before creating the server. SIGPIPE is
/// suppressed by libmicrohttpd per send (`MSG_NOSIGNAL`); if the library reports that it cannot do so, the
/// server ignores SIGPIPE process-wide.
public final class HTTPServer: Sendable {
    private let daemon: MHDDaemon

    /// The configuration the server was started with.
    public let configuration: HTTPServerConfiguration

    /// The bound TCP port (the real one when ``HTTPServerConfiguration/port`` was 0).
    public var port: Int {
        daemon.port
    }

    /// What the server did with its connections so far (open, refused, cut off).
    public var connectionStatistics: HTTPConnectionStatistics {
        daemon.connectionStatistics
    }

    /// Starts listening.
    ///
    /// - Parameters:
    ///   - configuration: Address, threads and limits.
    ///   - handler: Answers every request.
    /// - Throws: ``MicroHTTPError`` with code ``MicroHTTPError/Code/invalidConfiguration`` (for example a
    ///   host that is not an IP literal), ``MicroHTTPError/Code/addressInUse`` or
    ///   ``MicroHTTPError/Code/startFailed``.
    public init(configuration: HTTPServerConfiguration, handler: any HTTPHandler) throws {
        self.configuration = configuration
        self.daemon = try MHDDaemon(configuration: configuration, handler: handler)
    }

    /// Starts listening with a closure as the handler; see ``init(configuration:handler:)``.
    public convenience init(
        configuration: HTTPServerConfiguration,
        handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
    ) throws {
        try self.init(configuration: configuration, handler: ClosureHandler(body: handler))
    }

    /// Stops the server gracefully.
    ///
    /// 1. Stops accepting connections (`MHD_quiesce_daemon`); responses sent from now on carry
    ///    `Connection: close`.
    /// 2. Finishes every open stream (pending bytes are still sent) and refuses new ones.
    /// 3. Waits until the requests in flight (deferred ones included) have been answered and their responses
    ///    sent, at most `gracePeriod`.
    /// 4. Answers every deferred request still waiting with a 503 `shutting_down` error (a later
    ///    ``HTTPResponder/respond(_:)`` returns `false`), refuses new ones the same way, and waits up to a
    ///    second for those answers to be sent.
    /// 5. Stops the daemon (`MHD_stop_daemon`), closing every remaining connection.
    ///
    /// Idempotent: later calls return at once, concurrent ones when the server has stopped. Must not be
    /// called from a handler or a stream callback (it would wait for its own thread).
    ///
    /// - Parameter gracePeriod: The longest time to wait for in-flight requests.
    public func shutdown(gracePeriod: Duration) {
        daemon.shutdown(gracePeriod: gracePeriod)
    }

    private struct ClosureHandler: HTTPHandler {
        let body: @Sendable (HTTPRequest) -> HTTPResponse

        func handle(_ request: HTTPRequest) -> HTTPResponse {
            body(request)
        }
    }
}

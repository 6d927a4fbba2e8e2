import Dispatch
import Synchronization

/// What every libmicrohttpd callback of one daemon shares (handed to libmicrohttpd as `cls`).
final class ServerContext: Sendable {
    let handler: any HTTPHandler
    let maxBodySize: Int
    let maxQueryParameters: Int
    /// Limits and deadlines of the connections.
    let connections: ConnectionGuard
    let errorLog: (@Sendable (String) -> Void)?
    private let renderError: @Sendable (HTTPServerError) -> HTTPResponse
    /// Requests from their first access-handler call to their completion, streams and deferred ones
    /// included.
    let inFlight = DispatchGroup()
    private let shuttingDown = Atomic<Bool>(false)
    let streams: StreamRegistry
    let deferred: DeferredRegistry
    let monitor: HangupMonitor
    /// Log lines kept while the daemon starts, for the error thrown when it cannot (`nil` afterwards).
    private let startupLog = Mutex<[String]?>([])

    init(configuration: HTTPServerConfiguration, handler: any HTTPHandler) throws {
        self.handler = handler
        self.maxBodySize = configuration.maxBodySize
        self.maxQueryParameters = configuration.effectiveMaxQueryParameters
        self.connections = ConnectionGuard(
            limits: .init(
                perClient: configuration.perIPConnectionLimit,
                total: configuration.connectionLimit,
                headerTimeout: configuration.headerTimeout,
                bodyTimeout: configuration.bodyTimeout
            )
        )
        self.errorLog = configuration.errorLog
        self.renderError = configuration.errorResponse
        let streams = StreamRegistry()
        let errorLog = configuration.errorLog
        self.streams = streams
        self.deferred = DeferredRegistry()
        self.monitor = try HangupMonitor(log: { errorLog?($0) }, onHangup: { token in streams.hungUp(token) })
    }

    /// Whether ``beginShutdown()`` has run: answers carry `Connection: close` from then on.
    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    func beginShutdown() { shuttingDown.store(true, ordering: .releasing) }

    /// A request's headers are complete: it counts as in flight until ``requestEnded()``.
    func requestStarted() { inFlight.enter() }

    func requestEnded() { inFlight.leave() }

    /// Reports a problem to ``HTTPServerConfiguration/errorLog`` (and keeps it while starting).
    func log(_ message: String) {
        startupLog.withLock { lines in
            lines?.append(message)
        }
        errorLog?(message)
    }

    /// The lines logged since the daemon was created; stops keeping them.
    func endStartupCapture() -> [String] {
        startupLog.withLock { lines in
            defer { lines = nil }
            return lines ?? []
        }
    }

    /// `error` rendered by ``HTTPServerConfiguration/errorResponse``: always a complete body with a
    /// valid status (a hook that breaks this is reported, and plain text is sent instead).
    func errorResponse(_ error: HTTPServerError) -> HTTPResponse {
        var response = renderError(error)
        guard case .bytes = response.body else {
            log("MicroHTTP: the errorResponse hook returned a stream or deferred body; sending plain text")
            return HTTPServerError.plainTextResponse(error)
        }
        if !(100...999).contains(response.status) { response.status = error.status }
        return response
    }
}

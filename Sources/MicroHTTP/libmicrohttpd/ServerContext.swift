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
    /// The certificate of every connection's handshake; `nil` for plain HTTP.
    let tlsIdentity: TLSIdentity?
    private let renderError: @Sendable (HTTPServerError) -> HTTPResponse
    /// Requests from their first access-handler call to their completion, streams and deferred ones
    /// included (an atomic count: this runs twice per request).
    private let inFlight = Atomic<Int>(0)
    /// Signalled when the last request in flight completes while a shutdown waits for it.
    private let drained = DispatchSemaphore(value: 0)
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
        self.tlsIdentity = configuration.tls
        self.renderError = configuration.errorResponse
        let streams = StreamRegistry()
        let errorLog = configuration.errorLog
        self.streams = streams
        self.deferred = DeferredRegistry()
        self.monitor = try HangupMonitor(log: { errorLog?($0) }, onHangup: { token in streams.hungUp(token) })
    }

    /// Whether ``beginShutdown()`` has run: answers carry `Connection: close` from then on.
    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    // The flag and the count are stored and read sequentially consistent: the shutdown stores the flag
    // and then reads the count, a completing request changes the count and then reads the flag, and
    // at least one of the two must see the other's store, or the last completion signals nobody.
    func beginShutdown() { shuttingDown.store(true, ordering: .sequentiallyConsistent) }

    /// A request's headers are complete: it counts as in flight until ``requestEnded()``.
    func requestStarted() { inFlight.add(1, ordering: .relaxed) }

    func requestEnded() {
        let remaining = inFlight.subtract(1, ordering: .sequentiallyConsistent).newValue
        if remaining == 0 && shuttingDown.load(ordering: .sequentiallyConsistent) { drained.signal() }
    }

    /// Waits until no request is in flight, or `timeout` has passed (after ``beginShutdown()``, so
    /// that the last request to complete signals it); returns whether none is.
    func waitUntilNoRequestInFlight(timeout: Duration) -> Bool {
        let deadline = DispatchTime.now(advancedBy: timeout)
        while inFlight.load(ordering: .sequentiallyConsistent) > 0 {
            guard drained.wait(timeout: deadline) == .success else {
                return inFlight.load(ordering: .sequentiallyConsistent) == 0
            }
        }
        return true
    }

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

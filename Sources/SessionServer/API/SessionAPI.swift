import MicroHTTP
import SessionCore
import Synchronization

/// The HTTP API of the session service (`/v1/...`, `/healthz`, `/readyz`, `/metrics`), as a
/// MicroHTTP handler over a ``SessionBackend``.
///
/// libmicrohttpd's worker thread calls ``handle(_:)``, which finds the route in ``routes``, checks the
/// API token, and runs the route's handler. A backend reply that is known at once is answered on that
/// thread; one that comes later (a write waiting for its commit) becomes a deferred response, and the
/// thread moves on. Every failure becomes an ``APIError`` answer; nothing a client sends can crash the
/// process or change state when refused.
///
/// ```swift
/// let backend = LocalSessionBackend(store: SessionStore())
/// let api = SessionAPI(backend: backend, configuration: .init(credentials: .init(application: [try APIToken(secret)])))
/// let server = try HTTPServer(
///     configuration: .init(port: 8080, errorResponse: SessionAPI.errorResponse),
///     handler: api
/// )
/// api.markReady()
/// ```
public final class SessionAPI: HTTPHandler {
    /// Settings of the API layer.
    public struct Configuration: Sendable {
        /// The bearer tokens `/v1` routes accept and what each grants; none leaves them open (loopback
        /// only).
        public var credentials: APICredentials
        /// Most event-stream subscribers at once.
        public var maximumEventSubscribers: Int
        /// Pending bytes after which a slow event subscriber is disconnected.
        public var eventBufferBytes: Int

        public init(
            credentials: APICredentials = .none,
            maximumEventSubscribers: Int = 1000,
            eventBufferBytes: Int = 256 * 1024
        ) {
            self.credentials = credentials
            self.maximumEventSubscribers = maximumEventSubscribers
            self.eventBufferBytes = eventBufferBytes
        }
    }

    /// Called after every request, once its answer is known, with its route (`nil` for an unknown
    /// path), the method, the status and the handling time; for metrics.
    public typealias RequestObserver =
        @Sendable (_ route: Route?, _ method: String, _ status: Int, _ duration: Duration) -> Void

    /// Where the sessions live.
    public let backend: any SessionBackend
    /// The `/v1/events` subscribers.
    public let events: EventBroadcaster
    let metrics: MetricsEndpoint?
    private let configuration: Configuration
    private let ready = Atomic<Bool>(false)
    private let observer: RequestObserver?

    /// Largest JSON nesting of a request body. Far above the data limit (64), so that data nested
    /// too deeply is reported as `invalid_data` by the backend; the scanners are iterative, and the
    /// body size bounds the work.
    static let maximumBodyDepth = 10_000
    /// Largest page size of listings.
    public static let maximumLimit = 1000

    /// Renders the answers the HTTP server gives by itself in the API's error shape; give it to
    /// ``HTTPServerConfiguration/errorResponse``.
    public static let errorResponse: @Sendable (HTTPServerError) -> HTTPResponse = { APIError($0).response }

    /// - Parameters:
    ///   - backend: where the sessions live.
    ///   - configuration: the API token and the event-stream limits.
    ///   - metrics: serves `GET /metrics` on the API port; `nil` answers it 404 (metrics served elsewhere).
    ///   - observer: called after every request (for metrics).
    public init(
        backend: any SessionBackend,
        configuration: Configuration = Configuration(),
        metrics: MetricsEndpoint? = nil,
        observer: RequestObserver? = nil
    ) {
        self.backend = backend
        self.configuration = configuration
        self.metrics = metrics
        self.observer = observer
        events = EventBroadcaster(
            feed: backend.eventFeed,
            events: backend.events,
            maximumSubscribers: configuration.maximumEventSubscribers,
            bufferLimit: configuration.eventBufferBytes
        )
    }

    /// Lets `/readyz` answer 200 and `/v1` routes work (call once the backend is ready and the server
    /// listens); until then they answer 503 `not_ready`.
    public func markReady() { ready.store(true, ordering: .relaxed) }

    /// Whether `/readyz` answers 200.
    public var isReady: Bool { ready.load(ordering: .relaxed) }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let start = ContinuousClock.now
        // A path that is not valid UTF-8 (or held %00) names nothing: its repaired text could equal a
        // real username's.
        let match = request.pathIsValidUTF8 ? Self.routes.match(request.path) : nil
        let answer: APIAnswer
        do {
            answer = try dispatch(request, match)
        } catch {
            answer = .now(error.response)
        }
        let route = match?.route
        switch answer {
        case .now(let response):
            observer?(route, request.method, response.status, ContinuousClock.now - start)
            return response
        case .later(let completion):
            let observer = observer
            let method = request.method
            return HTTPResponse(deferred: { responder in
                completion { build in
                    responder.respond(building: {
                        let response = build()
                        observer?(route, method, response.status, ContinuousClock.now - start)
                        return response
                    })
                }
            })
        }
    }

    private func dispatch(_ request: HTTPRequest, _ match: RouteTable.Match?) throws(APIError) -> APIAnswer {
        guard let match else {
            // Unknown /v1 paths still require the token, so that probing reveals nothing.
            // Bytes, not characters: "/v1/\u{301}x" does not start with "/v1/" as a String.
            let bytes = request.path.utf8
            if bytes.starts(with: "/v1/".utf8) || bytes.elementsEqual("/v1".utf8) {
                try authorize(request, for: .application)
            }
            throw APIError.notFound
        }
        let route = match.route
        let operation = route.operation(for: request.method)
        // A method the route lacks is a 405 for whoever may call its least privileged operation.
        let scope = operation?.scope ?? route.scope
        if scope != .open {
            try authorize(request, for: scope)
            // Until the backend is ready, "unknown token" would be a lie.
            guard isReady else { throw APIError.notReady }
        }
        guard let operation else {
            throw APIError.methodNotAllowed(route.allowedMethods)
        }
        return try operation.handler(self, request, match.parameter)
    }

    /// Checks the request's bearer token against the credentials: 401 without one, 403
    /// `api_token_invalid` for an unknown one, 403 `api_token_insufficient_scope` for an API token on
    /// an administrative operation when admin tokens are configured.
    private func authorize(_ request: HTTPRequest, for scope: Route.Scope) throws(APIError) {
        let credentials = configuration.credentials
        guard credentials.isRequired(for: scope) else { return }
        let outcome = request.withHeader("Authorization") { header -> APIError? in
            guard let header else { return .apiTokenMissing }
            let scheme: StaticString = "bearer "
            return scheme.withUTF8Buffer { scheme -> APIError? in
                guard header.count > scheme.count else { return .apiTokenMissing }
                for index in scheme.indices where !Self.equalsIgnoringCase(header[index], scheme[index]) {
                    return .apiTokenMissing
                }
                guard let granted = credentials.scope(of: UnsafeBufferPointer(rebasing: header[scheme.count...])) else {
                    return .apiTokenInvalid
                }
                return granted >= scope ? nil : .apiTokenInsufficientScope
            }
        }
        if let outcome { throw outcome }
    }

    // MARK: Probes, metrics, events

    func health() -> APIAnswer { .now(SessionJSON.status("ok")) }

    func readiness() throws(APIError) -> APIAnswer {
        // A backend that cannot write does not make the instance unready: reads still work, and the
        // storage metrics say so. One that cannot answer at all (a shared store out of reach) does.
        guard isReady else { throw APIError.notReady }
        guard backend.isAvailable else {
            throw APIError(SessionError(code: .storageUnavailable, message: "the session store cannot be reached"))
        }
        return .now(SessionJSON.status("ready"))
    }

    func scrape(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        guard let metrics else { throw APIError.notFound }
        return metrics.answer(request)
    }

    func subscribe(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        // An empty Last-Event-ID is no id (as EventSource treats it).
        let lastEventID = request.header("Last-Event-ID").flatMap { $0.isEmpty ? nil : $0 }
        guard let response = events.subscribe(lastEventID: lastEventID) else { throw APIError.tooManySubscribers }
        return .now(response)
    }
}

import MicroHTTP
import SessionCore
import SessionStorage
import Synchronization

/// The HTTP API of the session service (`/v1/...`, `/healthz`, `/readyz`), as a MicroHTTP handler.
///
/// Synchronous from end to end: libmicrohttpd's worker thread calls ``handle(_:)``, which calls the
/// thread-safe ``SessionStore`` and renders JSON into bytes. Every failure becomes an ``APIError``
/// answer; nothing a client sends can crash the process or change state when refused.
///
/// ```swift
/// let api = SessionAPI(store: store, configuration: .init(apiToken: try APIToken(secret)))
/// let server = try HTTPServer(configuration: .init(port: 8080), handler: api)
/// api.markReady()
/// ```
public final class SessionAPI: HTTPHandler {
    /// Settings of the API layer.
    public struct Configuration: Sendable {
        /// The bearer token `/v1` routes require; `nil` leaves them open (loopback only).
        public var apiToken: APIToken?
        /// Most event-stream subscribers at once.
        public var maximumEventSubscribers: Int
        /// Pending bytes after which a slow event subscriber is disconnected.
        public var eventBufferBytes: Int

        public init(apiToken: APIToken? = nil, maximumEventSubscribers: Int = 1000, eventBufferBytes: Int = 256 * 1024) {
            self.apiToken = apiToken
            self.maximumEventSubscribers = maximumEventSubscribers
            self.eventBufferBytes = eventBufferBytes
        }
    }

    /// Called after every request with the route template (or `nil` for an unknown path), the
    /// method, the status and the handling time; for metrics.
    public typealias RequestObserver = @Sendable (_ route: Route?, _ method: String, _ status: Int, _ duration: Duration) -> Void

    public let store: SessionStore
    /// Durable storage of the store, when there is one: writes are refused while it cannot write,
    /// and in `commit` and `fsync` durability acknowledged only after their commit.
    public let storage: SessionStorage?
    public let events: EventBroadcaster
    private let configuration: Configuration
    private let ready = Atomic<Bool>(false)
    private let metricsHandler: (@Sendable (HTTPRequest) -> HTTPResponse)?
    private let observer: RequestObserver?

    /// Largest JSON nesting of a request body. Far above the data limit (64), so that data nested
    /// too deeply is reported as `invalid_data` by the store; the scanners are iterative, and the
    /// body size bounds the work.
    static let maximumBodyDepth = 10_000
    /// Largest page size of listings.
    public static let maximumLimit = 1000

    public init(
        store: SessionStore,
        storage: SessionStorage? = nil,
        configuration: Configuration = Configuration(),
        metricsHandler: (@Sendable (HTTPRequest) -> HTTPResponse)? = nil,
        observer: RequestObserver? = nil
    ) {
        self.store = store
        self.storage = storage
        self.configuration = configuration
        self.metricsHandler = metricsHandler
        self.observer = observer
        events = EventBroadcaster(
            store: store,
            maximumSubscribers: configuration.maximumEventSubscribers,
            bufferLimit: configuration.eventBufferBytes
        )
    }

    /// Lets `/readyz` answer 200 and `/v1` routes work (call once storage is replayed and the server
    /// listens); until then they answer 503 `not_ready`.
    public func markReady() { ready.store(true, ordering: .relaxed) }

    /// Whether `/readyz` answers 200.
    public var isReady: Bool { ready.load(ordering: .relaxed) }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let start = ContinuousClock.now
        // A path that is not valid UTF-8 (or held %00) names nothing: its repaired text could equal a
        // real username's.
        let route = request.pathIsValidUTF8 ? Route(path: request.path) : nil
        let outcome: Outcome
        do {
            outcome = try dispatch(request, route: route)
        } catch {
            outcome = .now(error.response)
        }
        switch outcome {
        case .now(let response):
            observer?(route, request.method, response.status, ContinuousClock.now - start)
            return response
        case .afterCommit(let response):
            guard let storage, storage.configuration.durability.acknowledgesAfterCommit else {
                observer?(route, request.method, response.status, ContinuousClock.now - start)
                return response
            }
            let observer = observer
            let method = request.method
            return HTTPResponse(deferred: { responder in
                storage.afterCommit { error in
                    let answer = error.map { APIError.storageUnavailable($0).response } ?? response
                    observer?(route, method, answer.status, ContinuousClock.now - start)
                    responder.respond(answer)
                }
            })
        }
    }

    // MARK: Dispatch

    /// A response to send now, or one to send once the change it acknowledges is durable.
    private enum Outcome {
        case now(HTTPResponse)
        case afterCommit(HTTPResponse)
    }

    private func dispatch(_ request: HTTPRequest, route: Route?) throws(APIError) -> Outcome {
        guard let route else {
            // Unknown /v1 paths still require the token, so that probing reveals nothing.
            // Bytes, not characters: "/v1/\u{301}x" does not start with "/v1/" as a String.
            let bytes = request.path.utf8
            if bytes.starts(with: "/v1/".utf8) || bytes.elementsEqual("/v1".utf8) { try authorize(request) }
            throw APIError.notFound
        }
        if route.requiresAPIToken {
            try authorize(request)
            // Until storage is replayed, "unknown token" would be a lie.
            guard isReady else { throw APIError.notReady }
        }
        // HEAD is GET without a body (libmicrohttpd drops the body).
        let method = request.method == "HEAD" && route.allows("GET") ? "GET" : request.method
        guard route.allows(method) else { throw APIError.methodNotAllowed(route.allowedMethods) }

        switch (route, method) {
        case (.sessions, "POST"): return .afterCommit(try writing { () throws(APIError) in try createSession(request) })
        case (.sessions, "GET"): return .now(try listSessions(request))
        case (.sessions, "DELETE"): return .afterCommit(try writing { () throws(APIError) in try deleteAllSessions(request) })
        case (.session, "GET"): return .now(try validateSession(request))
        case (.session, "DELETE"): return .afterCommit(try writing { () throws(APIError) in try logout(request) })
        case (.sessionData, "GET"): return .now(try readData(request))
        case (.sessionData, "PUT"): return .afterCommit(try writing { () throws(APIError) in try writeData(request) })
        case (.sessionRotate, "POST"): return .afterCommit(try writing { () throws(APIError) in try rotate(request) })
        case (.sessionByID(let id), "GET"): return .now(try sessionByID(id))
        case (.sessionByID(let id), "DELETE"): return .afterCommit(try writing { () throws(APIError) in try revoke(id) })
        case (.users, "GET"): return .now(try listUsers(request))
        case (.userSessions(let username), "DELETE"): return .afterCommit(try writing { () throws(APIError) in revokeAll(username) })
        case (.config, "GET"): return .now(configurationResponse(store.configuration))
        case (.config, "PATCH"): return .now(try patchConfiguration(request))
        case (.events, "GET"):
            // An empty Last-Event-ID is no id (as EventSource treats it).
            let lastEventID = request.header("Last-Event-ID").flatMap { $0.isEmpty ? nil : $0 }
            guard let response = events.subscribe(lastEventID: lastEventID) else {
                throw APIError.tooManySubscribers
            }
            return .now(response)
        case (.metrics, _):
            guard let metricsHandler else { throw APIError.notFound }
            return .now(metricsHandler(request))
        case (.healthz, _): return .now(status("ok"))
        case (.readyz, _):
            // Storage that cannot write does not make the instance unready: reads still work, and
            // sessiond_storage_writable says so.
            guard isReady else { throw APIError.notReady }
            return .now(status("ready"))
        default: throw APIError.methodNotAllowed(route.allowedMethods)
        }
    }

    /// Runs a write, unless storage cannot write at the moment (then nothing changes: 503).
    private func writing(_ body: () throws(APIError) -> HTTPResponse) throws(APIError) -> HTTPResponse {
        if let storage, !storage.isWritable { throw APIError.storageUnavailable(storage.lastError) }
        return try body()
    }

    private func authorize(_ request: HTTPRequest) throws(APIError) {
        guard let token = configuration.apiToken else { return }
        let outcome = request.withHeader("Authorization") { header -> APIError? in
            guard let header else { return .apiTokenMissing }
            let scheme: StaticString = "bearer "
            return scheme.withUTF8Buffer { scheme -> APIError? in
                guard header.count > scheme.count else { return .apiTokenMissing }
                for index in scheme.indices where header[index] | 0x20 != scheme[index] | 0x20 {
                    // `| 0x20` folds ASCII letters; the space (0x20) is unaffected.
                    return .apiTokenMissing
                }
                return token.matches(UnsafeBufferPointer(rebasing: header[scheme.count...])) ? nil : .apiTokenInvalid
            }
        }
        if let outcome { throw outcome }
    }

    // MARK: Sessions by token

    private func sessionToken(_ request: HTTPRequest) throws(APIError) -> String {
        guard let token = request.header("Session-Token"), !token.isEmpty else { throw APIError.sessionTokenMissing }
        return token
    }

    private func createSession(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let body = try jsonBody(request)
        try body.requireOnly(["username", "data", "idleTimeout", "maxLifetime"])
        guard let username = body.members["username"] else { throw APIError.invalidRequest("\"username\" is required") }
        guard case .string(let name) = username.value else { throw APIError.invalidRequest("\"username\" must be a string") }
        let idle = try duration(body.members["idleTimeout"], field: "idleTimeout")
        let lifetime = try duration(body.members["maxLifetime"], field: "maxLifetime")
        let created: CreatedSession
        do {
            created = try store.create(
                username: name, data: data(body.members["data"]), idleTimeout: idle, maxLifetime: lifetime
            )
        } catch {
            throw APIError(error)
        }
        var response = json(status: 201) { writer in Self.write(created.session, token: created.token, into: &writer) }
        response.headers.append(("Location", "/v1/sessions/\(created.session.id)"))
        return response
    }

    private func validateSession(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let refresh: Bool
        switch request.queryParameter("refresh") {
        case nil, "true": refresh = true
        case "false": refresh = false
        default: throw APIError.invalidArgument("refresh must be true or false")
        }
        // The token's bytes go to the store straight from the header: no `String` on this hot path.
        let validation = try request.withHeader("Session-Token") { (token) throws(APIError) in
            guard let token, !token.isEmpty else { throw APIError.sessionTokenMissing }
            return store.validate(tokenUTF8: token, refresh: refresh)
        }
        switch validation {
        case .valid(let session): return json { writer in Self.write(session, into: &writer) }
        case .unknown: throw APIError(SessionError(code: .sessionUnknown, message: "no session has this token"))
        case .expired(let reason):
            throw APIError(SessionError(code: .sessionExpired, message: "the session has expired (\(reason.rawValue))"))
        case .malformed: throw APIError(SessionError(code: .tokenMalformed, message: "the session token is malformed"))
        }
    }

    private func logout(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let token = try sessionToken(request)
        do {
            try store.logout(token: token)
        } catch {
            throw APIError(error)
        }
        return HTTPResponse(status: 204, headers: [("Cache-Control", "no-store")])
    }

    private func readData(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let token = try sessionToken(request)
        let data: [UInt8]?
        do {
            data = try store.data(token: token)
        } catch {
            throw APIError(error)
        }
        return dataResponse(data)
    }

    private func writeData(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let token = try sessionToken(request)
        let body = try jsonBody(request)
        try body.requireOnly(["data"])
        guard let member = body.members["data"] else { throw APIError.invalidRequest("\"data\" is required (null clears it)") }
        let session: Session
        do {
            session = try store.setData(token: token, data: data(member))
        } catch {
            throw APIError(error)
        }
        return dataResponse(session.data)
    }

    private func rotate(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let token = try sessionToken(request)
        let rotated: CreatedSession
        do {
            rotated = try store.rotate(token: token)
        } catch {
            throw APIError(error)
        }
        return json { writer in Self.write(rotated.session, token: rotated.token, into: &writer) }
    }

    // MARK: Administration

    private func listSessions(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let limit = try self.limit(request)
        // Not repaired: "%FF" must not list the sessions of a user named "\u{FFFD}".
        let username = try request.withQueryParameter("username") { (value) throws(APIError) -> String? in
            guard let value else { return nil }
            guard let text = String(validating: value, as: UTF8.self) else {
                throw APIError(SessionError(code: .invalidUsername, message: "the username is not valid UTF-8"))
            }
            return text
        }
        if let username {
            do {
                try SessionStore.checkUsername(username, maxBytes: store.configuration.maxUsernameBytes)
            } catch {
                throw APIError(error)
            }
        }
        let page: Page<Session>
        do {
            page = try store.sessions(username: username, limit: limit, cursor: request.queryParameter("cursor"))
        } catch {
            throw APIError(error)
        }
        return json(capacity: 64 + page.items.count * 256) { writer in
            writer.beginObject()
            writer.key("sessions")
            writer.beginArray()
            for session in page.items { Self.write(session, into: &writer) }
            writer.endArray()
            writer.key("nextCursor")
            if let next = page.nextCursor { writer.string(next) } else { writer.null() }
            writer.endObject()
        }
    }

    private func deleteAllSessions(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        guard request.queryParameter("confirm") == "true" else { throw APIError.confirmationRequired }
        return deletedResponse(store.deleteAll())
    }

    private func sessionByID(_ text: String) throws(APIError) -> HTTPResponse {
        guard let id = SessionID(text), let session = store.session(id: id) else { throw APIError.sessionNotFound }
        return json { writer in Self.write(session, into: &writer) }
    }

    private func revoke(_ text: String) throws(APIError) -> HTTPResponse {
        guard let id = SessionID(text), store.revoke(id: id) != nil else { throw APIError.sessionNotFound }
        return HTTPResponse(status: 204, headers: [("Cache-Control", "no-store")])
    }

    private func listUsers(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let limit = try self.limit(request)
        let page: Page<LoggedInUser>
        do {
            page = try store.users(limit: limit, cursor: request.queryParameter("cursor"))
        } catch {
            throw APIError(error)
        }
        return json(capacity: 64 + page.items.count * 64) { writer in
            writer.beginObject()
            writer.key("users")
            writer.beginArray()
            for user in page.items {
                writer.beginObject()
                writer.key("username")
                writer.string(user.username)
                writer.key("sessionCount")
                writer.integer(user.sessionCount)
                writer.endObject()
            }
            writer.endArray()
            writer.key("nextCursor")
            if let next = page.nextCursor { writer.string(next) } else { writer.null() }
            writer.endObject()
        }
    }

    private func revokeAll(_ username: String) -> HTTPResponse {
        deletedResponse(store.revokeAll(username: username))
    }

    private func patchConfiguration(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let body = try jsonBody(request)
        try body.requireOnly(["idleTimeout", "maxLifetime", "maxSessionsPerUser", "sessionLimitPolicy", "maxDataBytes"])
        let idle = try duration(body.members["idleTimeout"], field: "idleTimeout")
        let lifetime = try duration(body.members["maxLifetime"], field: "maxLifetime")
        var cap: Int?? = nil
        if let member = body.members["maxSessionsPerUser"] {
            switch member.value {
            case .null: cap = .some(nil)
            case .number(let value):
                guard value.rounded() == value, value >= 1, value <= Double(Int32.max) else {
                    throw APIError.invalidArgument("maxSessionsPerUser must be an integer ≥ 1, or null")
                }
                cap = .some(Int(value))
            default: throw APIError.invalidRequest("\"maxSessionsPerUser\" must be an integer or null")
            }
        }
        var policy: SessionStore.SessionLimitPolicy?
        if let member = body.members["sessionLimitPolicy"] {
            guard case .string(let text) = member.value else {
                throw APIError.invalidRequest("\"sessionLimitPolicy\" must be a string")
            }
            guard let parsed = SessionStore.SessionLimitPolicy(rawValue: text) else {
                throw APIError.invalidArgument("sessionLimitPolicy must be reject or evict_oldest")
            }
            policy = parsed
        }
        var maxData: Int?
        if let member = body.members["maxDataBytes"] {
            guard case .number(let value) = member.value else { throw APIError.invalidRequest("\"maxDataBytes\" must be an integer") }
            guard value.rounded() == value, value >= 2, value <= 16_777_216 else {
                throw APIError.invalidArgument("maxDataBytes must be an integer between 2 and 16777216")
            }
            maxData = Int(value)
        }
        let updated: SessionStore.Configuration
        do {
            updated = try store.updateConfiguration { configuration in
                if let idle { configuration.idleTimeout = idle }
                if let lifetime { configuration.maxLifetime = lifetime }
                if let cap { configuration.maxSessionsPerUser = cap }
                if let policy { configuration.sessionLimitPolicy = policy }
                if let maxData { configuration.maxDataBytes = maxData }
            }
        } catch {
            throw APIError(error)
        }
        return configurationResponse(updated)
    }

    // MARK: Request helpers

    private func jsonBody(_ request: HTTPRequest) throws(APIError) -> JSONBody {
        guard !request.body.isEmpty else { throw APIError.invalidRequest("a JSON body is required") }
        guard let contentType = request.header("Content-Type"), Self.isJSONMediaType(contentType) else {
            throw APIError.unsupportedMediaType
        }
        return try JSONBody(request.body, maximumDepth: Self.maximumBodyDepth)
    }

    private func data(_ member: JSONBody.Member?) -> [UInt8]? {
        guard let member, member.value != .null else { return nil }
        return Array(member.raw)
    }

    private func duration(_ member: JSONBody.Member?, field: String) throws(APIError) -> Duration? {
        guard let member else { return nil }
        guard case .number(let seconds) = member.value else {
            throw APIError.invalidTimeout("\(field) must be a number of seconds")
        }
        let maximum = Double(SessionStore.Configuration.maximumDuration.components.seconds)
        guard seconds.isFinite, seconds >= 2, seconds <= maximum else {
            throw APIError.invalidTimeout("\(field) must be between 2 and \(Int(maximum)) seconds")
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    private func limit(_ request: HTTPRequest) throws(APIError) -> Int {
        guard let text = request.queryParameter("limit") else { return 100 }
        guard let limit = Int(text), limit >= 1, limit <= Self.maximumLimit else {
            throw APIError.invalidArgument("limit must be an integer between 1 and \(Self.maximumLimit)")
        }
        return limit
    }

    // MARK: Responses

    /// The headers of every JSON answer; one shared array, so that answering allocates no header list.
    private static let jsonHeaders: [(name: String, value: String)] = [
        ("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store"),
    ]

    private func json(status: Int = 200, capacity: Int = 320, _ build: (inout JSONWriter) -> Void) -> HTTPResponse {
        var writer = JSONWriter(capacity: capacity)
        build(&writer)
        return HTTPResponse(status: status, headers: Self.jsonHeaders, body: writer.bytes, compressIfAccepted: true)
    }

    private func status(_ text: String) -> HTTPResponse {
        json { writer in
            writer.beginObject()
            writer.key("status")
            writer.string(text)
            writer.endObject()
        }
    }

    private func dataResponse(_ data: [UInt8]?) -> HTTPResponse {
        json { writer in
            writer.beginObject()
            writer.key("data")
            if let data { writer.raw(data) } else { writer.null() }
            writer.endObject()
        }
    }

    private func deletedResponse(_ count: Int) -> HTTPResponse {
        json { writer in
            writer.beginObject()
            writer.key("deleted")
            writer.integer(count)
            writer.endObject()
        }
    }

    private func configurationResponse(_ configuration: SessionStore.Configuration) -> HTTPResponse {
        json { writer in
            writer.beginObject()
            writer.key("idleTimeout")
            writer.seconds(configuration.idleTimeout)
            writer.key("maxLifetime")
            writer.seconds(configuration.maxLifetime)
            writer.key("maxSessionsPerUser")
            if let cap = configuration.maxSessionsPerUser { writer.integer(cap) } else { writer.null() }
            writer.key("sessionLimitPolicy")
            writer.string(configuration.sessionLimitPolicy.rawValue)
            writer.key("maxDataBytes")
            writer.integer(configuration.maxDataBytes)
            writer.endObject()
        }
    }

    /// A session as JSON; with `token` only for creation and rotation.
    static func write(_ session: Session, token: SessionToken? = nil, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id")
        writer.id(session.id)
        if let token {
            writer.key("token")
            writer.string(token.rawValue)
        }
        writer.key("username")
        writer.string(session.username)
        writer.key("createdAt")
        writer.timestamp(session.createdAt)
        writer.key("lastSeenAt")
        writer.timestamp(session.lastSeenAt)
        writer.key("idleExpiresAt")
        writer.timestamp(session.idleExpiresAt)
        writer.key("expiresAt")
        writer.timestamp(session.expiresAt)
        writer.key("idleTimeout")
        writer.seconds(session.idleTimeout)
        if let data = session.data {
            writer.key("data")
            writer.raw(data)
        }
        writer.endObject()
    }
}

extension SessionAPI {
    /// Whether a `Content-Type` value is `application/json`, in any case, with optional spaces and
    /// parameters (`application/json; charset=utf-8`). Byte-level: this runs on every write request.
    static func isJSONMediaType(_ value: String) -> Bool {
        var utf8 = value.utf8[...]
        while let first = utf8.first, first == 0x20 || first == 0x09 { utf8 = utf8.dropFirst() }
        let expected = "application/json".utf8
        guard utf8.count >= expected.count else { return false }
        for (byte, wanted) in zip(utf8.prefix(expected.count), expected) where byte | 0x20 != wanted | 0x20 {
            // `|0x20` folds ASCII letters; '/' (0x2F) is unaffected.
            return false
        }
        let rest = utf8.dropFirst(expected.count)
        guard let next = rest.first else { return true }
        return next == UInt8(ascii: ";") || next == 0x20 || next == 0x09
    }
}

import Dispatch
import HTTPTestSupport
import MicroHTTP
import SessionCore
import SessionMetrics
import SessionStorage
import Synchronization
import Testing

@testable import SessionServer

/// A backend whose every reply comes later, from another thread, as a backend on the network does:
/// it runs the operation on a ``LocalSessionBackend`` and delivers the result after `delay`.
final class LaterBackend: SessionBackend {
    let inner: LocalSessionBackend
    let delay: Duration
    private let queue = DispatchQueue(label: "later-backend", attributes: .concurrent)
    /// How many replies were delivered later.
    let deliveredLater = Atomic<Int>(0)

    init(_ inner: LocalSessionBackend, delay: Duration = .milliseconds(20)) {
        self.inner = inner
        self.delay = delay
    }

    var events: SessionEventHub { inner.events }
    var eventFeed: any SessionEventFeed { inner.eventFeed }

    private func later<Value>(_ reply: SessionReply<Value>) -> SessionReply<Value> {
        let promise = SessionPromise<Value>()
        let milliseconds = Int(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
        queue.asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { [self] in
            reply.whenComplete { result in
                self.deliveredLater.add(1, ordering: .relaxed)
                promise.complete(result)
            }
        }
        return .pending(promise)
    }

    func create(_ request: NewSession) -> SessionReply<CreatedSession> { later(inner.create(request)) }
    func validate(token: UnsafeBufferPointer<UInt8>, refresh: Bool) -> SessionReply<SessionValidation> {
        later(inner.validate(token: token, refresh: refresh))
    }
    func data(token: String) -> SessionReply<[UInt8]?> { later(inner.data(token: token)) }
    func setData(token: String, data: [UInt8]?) -> SessionReply<Session> {
        later(inner.setData(token: token, data: data))
    }
    func rotate(token: String) -> SessionReply<CreatedSession> { later(inner.rotate(token: token)) }
    func logout(token: String) -> SessionReply<Session> { later(inner.logout(token: token)) }
    func session(id: SessionID) -> SessionReply<Session?> { later(inner.session(id: id)) }
    func revoke(id: SessionID) -> SessionReply<Session?> { later(inner.revoke(id: id)) }
    func revokeAll(username: String) -> SessionReply<Int> { later(inner.revokeAll(username: username)) }
    func sessions(username: String?, limit: Int, cursor: String?) -> SessionReply<Page<Session>> {
        later(inner.sessions(username: username, limit: limit, cursor: cursor))
    }
    func users(limit: Int, cursor: String?) -> SessionReply<Page<LoggedInUser>> {
        later(inner.users(limit: limit, cursor: cursor))
    }
    func deleteAll() -> SessionReply<Int> { later(inner.deleteAll()) }
    func configuration() -> SessionReply<SessionStore.Configuration> { later(inner.configuration()) }
    func updateConfiguration(_ change: SessionConfigurationChange) -> SessionReply<SessionStore.Configuration> {
        later(inner.updateConfiguration(change))
    }
    func statistics() -> SessionReply<SessionStatistics> { later(inner.statistics()) }
}

/// The API over a backend whose replies all come later: every route answers as it does over the
/// in-memory backend, the worker thread is not held meanwhile, and metrics see the final status.
struct DeferredBackendTests {
    struct Observed: Hashable {
        var template: String?
        var method: String
        var status: Int
    }

    @Test func everyRouteWorksWhenTheBackendAnswersLater() throws {
        let backend = LaterBackend(LocalSessionBackend(store: SessionStore()))
        let observed = Mutex<[Observed]>([])
        let api = SessionAPI(backend: backend) { route, method, status, _ in
            observed.withLock { $0.append(Observed(template: route?.template, method: method, status: status)) }
        }
        api.markReady()
        // One worker thread: a handler that waited for the backend would serialise everything.
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 1, errorResponse: SessionAPI.errorResponse),
            handler: api
        )
        defer { server.shutdown(gracePeriod: .seconds(1)) }
        let client = try TestHTTPClient(port: server.port)
        let json = [("Content-Type", "application/json")]

        let created = try client.request(
            "POST",
            "/v1/sessions",
            headers: json,
            body: Array(#"{"username":"ada","data":{"a":1}}"#.utf8)
        )
        #expect(created.status == 201)
        #expect(created.header("Location")?.hasPrefix("/v1/sessions/") == true)
        let token = try #require(created.text.split(separator: "\"").first { $0.hasPrefix("usm_") }.map(String.init))
        let id = try #require(created.header("Location")?.split(separator: "/").last.map(String.init))

        #expect(try client.request("GET", "/v1/session", headers: [("Session-Token", token)]).status == 200)
        let put = try client.request(
            "PUT",
            "/v1/session/data",
            headers: json + [("Session-Token", token)],
            body: Array(#"{"data":[1,2]}"#.utf8)
        )
        #expect(put.status == 200 && put.text == #"{"data":[1,2]}"#)
        #expect(
            try client.request("GET", "/v1/session/data", headers: [("Session-Token", token)]).text
                == #"{"data":[1,2]}"#
        )
        #expect(try client.request("GET", "/v1/sessions/\(id)").status == 200)
        #expect(try client.request("GET", "/v1/sessions?username=ada").text.contains(id))
        #expect(try client.request("GET", "/v1/users").text.contains(#""sessionCount":1"#))
        let patched = try client.request(
            "PATCH",
            "/v1/config",
            headers: json,
            body: Array(#"{"idleTimeout":900}"#.utf8)
        )
        #expect(patched.status == 200 && patched.text.contains(#""idleTimeout":900"#))
        #expect(try client.request("GET", "/v1/config").text.contains(#""idleTimeout":900"#))

        let rotated = try client.request("POST", "/v1/session/rotate", headers: [("Session-Token", token)])
        #expect(rotated.status == 200)
        let newToken = try #require(rotated.text.split(separator: "\"").first { $0.hasPrefix("usm_") }.map(String.init))
        #expect(
            try client.request("GET", "/v1/session", headers: [("Session-Token", token)]).text.contains(
                "session_unknown"
            )
        )
        #expect(try client.request("DELETE", "/v1/session", headers: [("Session-Token", newToken)]).status == 204)
        #expect(try client.request("DELETE", "/v1/session", headers: [("Session-Token", newToken)]).status == 401)
        #expect(try client.request("DELETE", "/v1/sessions/\(id)").status == 404)
        #expect(try client.request("DELETE", "/v1/users/ada/sessions").text == #"{"deleted":0}"#)
        #expect(try client.request("DELETE", "/v1/sessions?confirm=true").text == #"{"deleted":0}"#)

        #expect(backend.deliveredLater.load(ordering: .relaxed) == 16)  // every request above that reached the backend
        let seen = observed.withLock { $0 }
        #expect(seen.contains(Observed(template: "/v1/sessions", method: "POST", status: 201)))
        #expect(seen.contains(Observed(template: "/v1/session", method: "DELETE", status: 401)))
        #expect(seen.contains(Observed(template: "/v1/sessions/{id}", method: "DELETE", status: 404)))
    }

    @Test func aWorkerThreadIsNotHeldWhileTheBackendWorks() throws {
        let backend = LaterBackend(LocalSessionBackend(store: SessionStore()), delay: .milliseconds(300))
        let api = SessionAPI(backend: backend)
        api.markReady()
        let server = try HTTPServer(configuration: HTTPServerConfiguration(port: 0, threadCount: 1), handler: api)
        defer { server.shutdown(gracePeriod: .seconds(1)) }
        // Eight validations at once on one worker thread: about one delay in all, not eight.
        let clients = try (0..<8).map { _ in try TestHTTPClient(port: server.port) }
        let start = monotonicSeconds()
        for client in clients {
            try client.send("GET /v1/session HTTP/1.1\r\nHost: x\r\nSession-Token: usm_x\r\n\r\n")
        }
        for client in clients { #expect(try client.readResponse().status == 401) }
        #expect(monotonicSeconds() - start < 1.5)
    }
}

/// A backend whose statistics cannot be read (a store that is unreachable).
final class NoStatisticsBackend: SessionBackend {
    let inner = LocalSessionBackend(store: SessionStore())

    var events: SessionEventHub { inner.events }
    var eventFeed: any SessionEventFeed { inner.eventFeed }
    func create(_ request: NewSession) -> SessionReply<CreatedSession> { inner.create(request) }
    func validate(token: UnsafeBufferPointer<UInt8>, refresh: Bool) -> SessionReply<SessionValidation> {
        inner.validate(token: token, refresh: refresh)
    }
    func data(token: String) -> SessionReply<[UInt8]?> { inner.data(token: token) }
    func setData(token: String, data: [UInt8]?) -> SessionReply<Session> { inner.setData(token: token, data: data) }
    func rotate(token: String) -> SessionReply<CreatedSession> { inner.rotate(token: token) }
    func logout(token: String) -> SessionReply<Session> { inner.logout(token: token) }
    func session(id: SessionID) -> SessionReply<Session?> { inner.session(id: id) }
    func revoke(id: SessionID) -> SessionReply<Session?> { inner.revoke(id: id) }
    func revokeAll(username: String) -> SessionReply<Int> { inner.revokeAll(username: username) }
    func sessions(username: String?, limit: Int, cursor: String?) -> SessionReply<Page<Session>> {
        inner.sessions(username: username, limit: limit, cursor: cursor)
    }
    func users(limit: Int, cursor: String?) -> SessionReply<Page<LoggedInUser>> {
        inner.users(limit: limit, cursor: cursor)
    }
    func deleteAll() -> SessionReply<Int> { inner.deleteAll() }
    func configuration() -> SessionReply<SessionStore.Configuration> { inner.configuration() }
    func updateConfiguration(_ change: SessionConfigurationChange) -> SessionReply<SessionStore.Configuration> {
        inner.updateConfiguration(change)
    }
    func statistics() -> SessionReply<SessionStatistics> {
        .failure(SessionError(code: .storageUnavailable, message: "unreachable"))
    }
}

struct MetricsEndpointTests {
    /// A scrape whose statistics cannot be read answers 500 with a line of text, like a rendering
    /// failure, and is counted: the in-flight gauge goes back down.
    @Test func aScrapeWithoutStatisticsIsA500AndIsCounted() throws {
        let backend = NoStatisticsBackend()
        let metrics = SessionMetrics(events: backend.events, includeProcessMetrics: false)
        let endpoint = MetricsEndpoint(metrics: metrics, backend: backend)
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 1),
            handler: endpoint.standaloneHandler
        )
        defer { server.shutdown(gracePeriod: .seconds(1)) }
        let client = try TestHTTPClient(port: server.port)
        let failed = try client.request("GET", "/metrics")
        #expect(failed.status == 500)
        #expect(failed.text.hasPrefix("An error has occurred while serving metrics"))
        let text = String(decoding: try metrics.exposition(SessionStatistics()), as: UTF8.self)
        #expect(text.contains(#"promhttp_metric_handler_requests_total{code="500"} 1"#))
        #expect(text.contains("promhttp_metric_handler_requests_in_flight 0"))
    }
}

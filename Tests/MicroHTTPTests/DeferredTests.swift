import Dispatch
import HTTPTestSupport
import Synchronization
import Testing

@testable import MicroHTTP

#if canImport(Glibc)
import Glibc
#endif

/// Collects the responders of deferred requests by the request's `id` query parameter, and what the
/// handler's own `respond` calls returned.
final class ResponderHub: Sendable {
    private let responders = Mutex<[String: HTTPResponder]>([:])
    let results = Mutex<[Bool]>([])

    func add(_ responder: HTTPResponder, id: String) {
        responders.withLock { $0[id] = responder }
    }

    func responder(_ id: String) -> HTTPResponder? {
        responders.withLock { $0[id] }
    }

    var count: Int {
        responders.withLock { $0.count }
    }
}

/// The routes of the deferred-response tests.
struct DeferredTestHandler: HTTPHandler {
    let hub: ResponderHub

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        let hub = self.hub
        switch request.path {
        case "/plain":
            return .text("plain")
        case "/later":
            // Answered by the test, through the hub.
            let id = request.queryParameter("id") ?? ""
            return HTTPResponse(deferred: { responder in hub.add(responder, id: id) })
        case "/after-50ms":
            var response = HTTPResponse(deferred: { responder in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) {
                    let sent = responder.respond(
                        HTTPResponse(
                            status: 201,
                            headers: [("Content-Type", "text/plain"), ("X-Deferred", "yes")],
                            body: Array("made later".utf8)
                        )
                    )
                    hub.results.withLock { $0.append(sent) }
                }
            })
            // Ignored for a deferred body, even an invalid status.
            response.status = 42
            response.headers = [("X-Outer", "ignored")]
            return response
        case "/sync":
            return HTTPResponse(deferred: { responder in
                let first = responder.respond(
                    HTTPResponse(status: 202, headers: [("X-Sync", "1")], body: Array("sync answer".utf8))
                )
                let second = responder.respond(.text("too late"))
                hub.results.withLock { $0 += [first, second] }
            })
        default:
            return .text("No route for \(request.path).\n", status: 404)
        }
    }
}

/// Runs `body` against a fresh server with ``DeferredTestHandler``, then shuts it down.
private func withDeferredServer(
    _ configuration: HTTPServerConfiguration = HTTPServerConfiguration(port: 0, threadCount: 2),
    _ body: (HTTPServer, ResponderHub) throws -> Void
) throws {
    let hub = ResponderHub()
    let server = try HTTPServer(configuration: configuration, handler: DeferredTestHandler(hub: hub))
    defer { server.shutdown(gracePeriod: .seconds(1)) }
    try body(server, hub)
}

/// Sends `GET /later?id=<id>` and waits until its responder has arrived.
private func sendDeferred(
    _ client: TestHTTPClient,
    id: String,
    hub: ResponderHub,
    method: String = "GET"
) throws -> HTTPResponder {
    try client.send("\(method) /later?id=\(id) HTTP/1.1\r\nHost: x\r\n\r\n")
    #expect(waitUntil(timeout: 5) { hub.responder(id) != nil })
    return try #require(hub.responder(id))
}

extension ServerTests {
    @Test func deferredResponseAnsweredFromAnotherThreadLater() throws {
        try withDeferredServer { server, hub in
            let client = try TestHTTPClient(port: server.port)
            let start = monotonicSeconds()
            let response = try client.request("GET", "/after-50ms")
            #expect(monotonicSeconds() - start >= 0.045)
            #expect(response.status == 201)
            #expect(response.header("X-Deferred") == "yes")
            #expect(response.header("Content-Type") == "text/plain")
            #expect(response.header("X-Outer") == nil)
            #expect(response.text == "made later")
            // The responder records its result after respond() returns, which can be after the client
            // already has the answer.
            #expect(waitUntil(timeout: 5) { hub.results.withLock { $0 } == [true] }, "\(hub.results.withLock { $0 })")
        }
    }

    @Test func deferredResponseAnsweredSynchronouslyInsideStart() throws {
        try withDeferredServer { server, hub in
            let client = try TestHTTPClient(port: server.port)
            let response = try client.request("GET", "/sync")
            #expect(response.status == 202)
            #expect(response.header("X-Sync") == "1")
            #expect(response.text == "sync answer")
            #expect(
                waitUntil(timeout: 5) { hub.results.withLock { $0 } == [true, false] },
                "\(hub.results.withLock { $0 })"
            )
            // Nothing else was written on the connection.
            #expect(try client.request("GET", "/plain").text == "plain")
        }
    }

    @Test func deferredResponsesKeepTheConnectionAlive() throws {
        try withDeferredServer { server, hub in
            let client = try TestHTTPClient(port: server.port)
            let first = try sendDeferred(client, id: "one", hub: hub)
            #expect(first.respond(.text("first")))
            let firstResponse = try client.readResponse()
            #expect(firstResponse.text == "first")
            #expect(firstResponse.header("Connection")?.lowercased() != "close")

            // HEAD: headers, no body (a body would be read as the next status line).
            let head = try sendDeferred(client, id: "head", hub: hub, method: "HEAD")
            #expect(head.respond(.text("twelve bytes")))
            let headResponse = try client.readResponse(hasBody: false)
            #expect(headResponse.status == 200)
            #expect(headResponse.header("Content-Length") == "12")

            let second = try sendDeferred(client, id: "two", hub: hub)
            #expect(second.respond(.text("second")))
            let secondResponse = try client.readResponse()
            #expect(secondResponse.text == "second")
            #expect(secondResponse.header("Connection")?.lowercased() != "close")
            #expect(try client.request("GET", "/plain").text == "plain")
        }
    }

    @Test func pendingDeferredRequestsHoldNoWorkerThread() throws {
        try withDeferredServer(HTTPServerConfiguration(port: 0, threadCount: 2)) { server, hub in
            let count = 200
            var clients: [TestHTTPClient] = []
            for index in 0..<count {
                let client = try TestHTTPClient(port: server.port)
                try client.send("GET /later?id=\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                clients.append(client)
            }
            #expect(waitUntil(timeout: 10) { hub.count == count })

            // All 200 wait, none answered; the two pool threads still serve a new connection at once.
            let start = monotonicSeconds()
            let plain = try TestHTTPClient(port: server.port, receiveTimeout: 3).request("GET", "/plain")
            #expect(plain.text == "plain")
            #expect(monotonicSeconds() - start < 1)

            // Answer them all, from several threads at once.
            let accepted = Atomic<Int>(0)
            DispatchQueue.concurrentPerform(iterations: count) { index in
                if hub.responder(String(index))?.respond(.text("body-\(index)")) == true {
                    accepted.add(1, ordering: .relaxed)
                }
            }
            #expect(accepted.load(ordering: .relaxed) == count)
            for (index, client) in clients.enumerated() {
                let response = try client.readResponse()
                #expect(response.status == 200)
                #expect(response.text == "body-\(index)")
            }
        }
    }

    @Test func deferredResponseIsGzippedWhenAccepted() throws {
        let text = String(compressibleText.prefix(2048))
        #expect(text.utf8.count == 2048)
        try withDeferredServer { server, hub in
            let client = try TestHTTPClient(port: server.port)
            for acceptsGzip in [true, false] {
                let id = "gzip-\(acceptsGzip)"
                let header = acceptsGzip ? "Accept-Encoding: gzip\r\n" : ""
                try client.send("GET /later?id=\(id) HTTP/1.1\r\nHost: x\r\n\(header)\r\n")
                #expect(waitUntil(timeout: 5) { hub.responder(id) != nil })
                let responder = try #require(hub.responder(id))
                usleep(20_000)  // the request is long gone: Accept-Encoding must have been captured
                var answer = HTTPResponse.text(text)
                answer.compressIfAccepted = true
                #expect(responder.respond(answer))
                let response = try client.readResponse()
                #expect(response.status == 200)
                #expect(response.header("Vary") == "Accept-Encoding")
                if acceptsGzip {
                    #expect(response.header("Content-Encoding") == "gzip")
                    #expect(response.body.count < 1024)
                    #expect(try gunzip(response.body) == Array(text.utf8))
                } else {
                    #expect(response.header("Content-Encoding") == nil)
                    #expect(response.text == text)
                }
            }
        }
    }

    @Test func shutdownAnswersUnansweredDeferredRequestWith503() throws {
        let hub = ResponderHub()
        // The 503 is rendered by the configuration's errorResponse hook.
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 2, errorResponse: jsonErrorResponse),
            handler: DeferredTestHandler(hub: hub)
        )
        let client = try TestHTTPClient(port: server.port)
        let responder = try sendDeferred(client, id: "never", hub: hub)
        let start = monotonicSeconds()
        server.shutdown(gracePeriod: .milliseconds(200))
        let elapsed = monotonicSeconds() - start
        #expect(elapsed >= 0.19)  // the deferred request counted as in flight
        #expect(elapsed < 2)
        let response = try client.readResponse()
        #expect(response.status == 503)
        #expect(response.text.hasPrefix(#"{"error":{"code":"shutting_down","#))
        #expect(response.header("Connection")?.lowercased() == "close")
        #expect(!responder.respond(.text("too late")))
        #expect(client.waitForClose(timeout: 2))
    }

    @Test func gracefulShutdownWaitsForDeferredRequest() throws {
        let hub = ResponderHub()
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 2),
            handler: DeferredTestHandler(hub: hub)
        )
        let client = try TestHTTPClient(port: server.port)
        let responder = try sendDeferred(client, id: "slow", hub: hub)
        let stopped = DispatchGroup()
        let start = monotonicSeconds()
        DispatchQueue.global().async(group: stopped) {
            server.shutdown(gracePeriod: .seconds(5))
        }
        usleep(300_000)
        #expect(responder.respond(.text("committed")))
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.text == "committed")
        #expect(response.header("Connection")?.lowercased() == "close")
        #expect(stopped.wait(timeout: .now() + 3) == .success)
        let elapsed = monotonicSeconds() - start
        #expect(elapsed >= 0.29)
        #expect(elapsed < 3)
    }

    @Test func respondRacingShutdownNeverCrashes() throws {
        let hub = ResponderHub()
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 2),
            handler: DeferredTestHandler(hub: hub)
        )
        let count = 40
        var clients: [TestHTTPClient] = []
        for index in 0..<count {
            let client = try TestHTTPClient(port: server.port)
            try client.send("GET /later?id=\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(client)
        }
        #expect(waitUntil(timeout: 5) { hub.count == count })
        let accepted = Mutex<Set<Int>>([])
        let answering = DispatchGroup()
        DispatchQueue.global().async(group: answering) {
            for index in 0..<count {
                if hub.responder(String(index))?.respond(.text("ok-\(index)")) == true {
                    accepted.withLock { _ = $0.insert(index) }
                }
                usleep(5_000)
            }
        }
        // Shut down while the answers are coming in: some get there first, the rest get the 503.
        #expect(waitUntil(timeout: 5) { accepted.withLock { $0.count } >= 5 })
        server.shutdown(gracePeriod: .milliseconds(20))
        #expect(answering.wait(timeout: .now() + 5) == .success)
        let acceptedIndices = accepted.withLock { $0 }
        #expect(!acceptedIndices.isEmpty)
        #expect(acceptedIndices.count < count)
        for (index, client) in clients.enumerated() {
            let response = try client.readResponse()
            if acceptedIndices.contains(index) {
                #expect(response.status == 200)
                #expect(response.text == "ok-\(index)")
            } else {
                #expect(response.status == 503)
                #expect(response.text.contains("shutting_down"))
            }
        }
    }

    @Test func secondRespondIsIgnored() throws {
        try withDeferredServer { server, hub in
            let client = try TestHTTPClient(port: server.port)
            let responder = try sendDeferred(client, id: "twice", hub: hub)
            #expect(responder.respond(.text("first")))
            #expect(!responder.respond(.text("second")))
            #expect(!responder.respond(HTTPResponse(status: 500, body: Array("third".utf8))))
            let response = try client.readResponse()
            #expect(response.status == 200)
            #expect(response.text == "first")
            // Nothing else arrives on the connection, and it still serves the next request.
            #expect(client.readAvailable(timeout: 0.2).isEmpty)
            #expect(try client.request("GET", "/plain").text == "plain")
            #expect(!responder.respond(.text("after completion")))
        }
    }

    @Test func deferredAnswerMistakesBecome500() throws {
        let log = Mutex<[String]>([])
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 1)
        configuration.errorLog = { line in log.withLock { $0.append(line) } }
        try withDeferredServer(configuration) { server, hub in
            let client = try TestHTTPClient(port: server.port)
            let stream = try sendDeferred(client, id: "stream", hub: hub)
            #expect(stream.respond(HTTPResponse(stream: HTTPStreamConfiguration { writer in writer.finish() })))
            let streamResponse = try client.readResponse()
            #expect(streamResponse.status == 500)
            #expect(streamResponse.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(streamResponse.text.hasPrefix("internal_error: "))

            let nested = try sendDeferred(client, id: "nested", hub: hub)
            #expect(nested.respond(HTTPResponse(deferred: { responder in responder.respond(.text("no")) })))
            #expect(try client.readResponse().status == 500)

            let badStatus = try sendDeferred(client, id: "status", hub: hub)
            #expect(badStatus.respond(HTTPResponse(status: 1000, body: Array("never".utf8))))
            #expect(try client.readResponse().status == 500)
            #expect(try client.request("GET", "/plain").text == "plain")
        }
        let lines = log.withLock { $0 }
        #expect(lines.filter { $0.contains("stream or deferred body") }.count == 2)
        #expect(lines.contains { $0.contains("invalid status 1000") })
    }
}

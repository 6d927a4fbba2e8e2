import HTTPTestSupport
import Synchronization
import Testing

@testable import MicroHTTP

#if canImport(Glibc)
import Glibc
#endif

/// End-to-end tests against a real server on 127.0.0.1. Serialized: some of them measure time and CPU.
@Suite(.serialized)
struct ServerTests {
    @Test func getAndPostEchoWithBodySplitAcrossWrites() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let get = try client.request("GET", "/echo")
            #expect(get.status == 200)
            #expect(get.header("X-Method") == "GET")
            #expect(get.body.isEmpty)

            let body = Array("first part|second part|third part".utf8)
            try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
            usleep(50_000)
            try client.send(Array(body[0..<11]))
            usleep(50_000)
            try client.send(Array(body[11..<23]))
            usleep(50_000)
            try client.send(Array(body[23...]))
            let post = try client.readResponse()
            #expect(post.status == 200)
            #expect(post.header("X-Method") == "POST")
            #expect(post.body == body)
        }
    }

    @Test func chunkedUploadIsReassembled() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            try client.send("PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            try client.send("5\r\nhello\r\n")
            usleep(30_000)
            try client.send("6\r\n world\r\n0\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 200)
            #expect(response.text == "hello world")
        }
    }

    @Test func keepAliveServesTwoRequestsOnOneConnection() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let first = try client.request("POST", "/echo", body: Array("one".utf8))
            let second = try client.request("POST", "/echo", body: Array("two".utf8))
            #expect(first.text == "one")
            #expect(second.text == "two")
            #expect(first.header("Connection")?.lowercased() != "close")
            // Pipelined: both requests in one write.
            try client.send(
                "GET /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /header?name=Host HTTP/1.1\r\nHost: pipelined\r\n\r\n"
            )
            #expect(try client.readResponse().status == 200)
            #expect(try client.readResponse().text == "pipelined")
        }
    }

    @Test func queryParametersAreDecoded() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let response = try client.request("GET", "/query?a=1&b=hello%20world&flag&a=2&plus=x+y&A=upper")
            #expect(response.status == 200)
            let lines = response.text.split(separator: "\n").map(String.init)
            #expect(
                lines == [
                    "a=1", "b=hello world", "flag=", "a=2", "plus=x y", "A=upper",
                    "lookup-a=1", "lookup-A=upper", "lookup-missing=<nil>",
                ]
            )
        }
    }

    @Test func pathIsDecodedAndExcludesTheQuery() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let response = try client.request("GET", "/path/a%20b%C3%A9?x=1")
            #expect(response.status == 200)
            #expect(response.text == "/path/a bé")
            #expect(try client.request("GET", "/nowhere").status == 404)
        }
    }

    @Test func aNULOrInvalidUTF8InThePathMarksItInvalidInsteadOfCuttingItShort() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            // libmicrohttpd's decoder turned %00 into a NUL, and the C string ended there: "/path/a".
            #expect(try client.request("GET", "/path/a%00b").text == "invalid: /path/a\u{FFFD}b")
            #expect(try client.request("GET", "/path/%FF").text == "invalid: /path/\u{FFFD}")
            #expect(try client.request("GET", "/path/%C3%A9%20%2f").text == "/path/é /")
            // Malformed escapes are kept as they are, as libmicrohttpd keeps them.
            #expect(try client.request("GET", "/path/%zz%4").text == "/path/%zz%4")
            // A raw NUL in the request line: libmicrohttpd 0.9.75 accepts it, and the path ends there.
            try client.send(Array("GET /path/a".utf8) + [0] + Array("b?x=1 HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(try client.readResponse().text == "invalid: /path/a")
            #expect(try client.request("GET", "/path/ok").text == "/path/ok")  // the next request is fine
            // In the query, where libmicrohttpd would cut an argument short, and in the method.
            try client.send(Array("GET /path/q?a=1".utf8) + [0] + Array("&b=2 HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(try client.readResponse().text == "invalid: /path/q")
            try client.send(Array("GET".utf8) + [0] + Array("X /echo HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(try client.readResponse().header("X-Method") == "GET\u{FFFD}")
            #expect(try client.request("GET", "/echo").header("X-Method") == "GET")
            // Query arguments go through the same decoder.
            let query = try client.request("GET", "/query?a=x%00y&b=%41%2b+").text
            #expect(query.contains("a=x\u{FFFD}y"))
            #expect(query.contains("b=A+ "))
        }
    }

    @Test func headerLookupIsCaseInsensitive() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let lower = try client.request("GET", "/header?name=x-custom-thing", headers: [("X-CUSTOM-Thing", "v1")])
            #expect(lower.text == "v1")
            let missing = try client.request("GET", "/header?name=x-absent")
            #expect(missing.text == "<none>")
        }
    }

    @Test func headerBytesLookupMatchesTheStringLookup() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let value = "usm_é \u{7F}bytes"
            #expect(try client.request("GET", "/header-bytes", headers: [("x-TOKEN", value)]).text == value)
            #expect(try client.request("GET", "/header-bytes", headers: [("X-Token", "")]).text == "")
            #expect(try client.request("GET", "/header-bytes", headers: [("X-Token-2", "no")]).text == "<none>")
            #expect(try client.request("GET", "/header-bytes").text == "<none>")
            let repeated = try client.request(
                "GET",
                "/header-bytes",
                headers: [("X-Token", "first"), ("X-Token", "second")]
            )
            #expect(repeated.text == "first")
        }
    }

    @Test func bodyAboveLimitIsRefusedWith413AndClose() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 2)
        configuration.maxBodySize = 1000
        // The 413 is rendered by the configuration's errorResponse hook.
        configuration.errorResponse = jsonErrorResponse
        try withServer(configuration) { server, _ in
            // Declared too large, client waits for 100-continue: refused before the body is sent.
            let waiting = try TestHTTPClient(port: server.port)
            try waiting.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
            let refused = try waiting.readResponse()
            #expect(refused.status == 413)
            #expect(refused.header("Connection")?.lowercased() == "close")
            #expect(refused.header("Content-Type") == "application/json; charset=utf-8")
            #expect(refused.text.hasPrefix(#"{"error":{"code":"body_too_large","message":"#))
            #expect(waiting.waitForClose(timeout: 2))

            // Declared too large and sent right away, in pieces: read, dropped, then refused.
            let declared = try TestHTTPClient(port: server.port)
            try declared.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            for _ in 0..<5 {
                usleep(10_000)
                try declared.send([UInt8](repeating: 0x62, count: 1000))
            }
            let declaredRefused = try declared.readResponse()
            #expect(declaredRefused.status == 413)
            #expect(declaredRefused.text.contains("body_too_large"))
            #expect(declared.waitForClose(timeout: 2))

            // Chunked, so the size is only known while reading.
            let chunked = try TestHTTPClient(port: server.port)
            try chunked.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in 0..<3 {
                usleep(10_000)
                try chunked.send("190\r\n" + String(repeating: "c", count: 400) + "\r\n")
            }
            try chunked.send("0\r\n\r\n")
            let chunkedRefused = try chunked.readResponse()
            #expect(chunkedRefused.status == 413)
            #expect(chunkedRefused.text.contains("body_too_large"))
            #expect(chunked.waitForClose(timeout: 2))

            // Exactly at the limit is fine.
            let atLimit = try TestHTTPClient(port: server.port)
            let ok = try atLimit.request("POST", "/echo", body: [UInt8](repeating: 0x61, count: 1000))
            #expect(ok.status == 200)
            #expect(ok.body.count == 1000)
        }
    }

    @Test func headHasHeadersButNoBody() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let head = try client.request("HEAD", "/compressible")
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == String(compressibleText.utf8.count))
            // If any body bytes had been sent they would be read as the next status line.
            let next = try client.request("GET", "/header?name=Host")
            #expect(next.status == 200)
            #expect(next.text == "127.0.0.1")
        }
    }

    @Test func gzipIsNegotiated() throws {
        try withServer { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let gzipped = try client.request("GET", "/compressible", headers: [("Accept-Encoding", "gzip")])
            #expect(gzipped.status == 200)
            #expect(gzipped.header("Content-Encoding") == "gzip")
            #expect(gzipped.header("Vary") == "Accept-Encoding")
            #expect(gzipped.body.count < compressibleText.utf8.count / 4)
            #expect(try gunzip(gzipped.body) == Array(compressibleText.utf8))

            let identity = try client.request("GET", "/compressible")
            #expect(identity.header("Content-Encoding") == nil)
            #expect(identity.header("Vary") == "Accept-Encoding")
            #expect(identity.body == Array(compressibleText.utf8))

            let refused = try client.request(
                "GET",
                "/compressible",
                headers: [("Accept-Encoding", "gzip;q=0, identity")]
            )
            #expect(refused.header("Content-Encoding") == nil)
            #expect(refused.body == Array(compressibleText.utf8))

            let wildcard = try client.request(
                "GET",
                "/compressible",
                headers: [("accept-encoding", "br;q=1.0, *;q=0.5")]
            )
            #expect(wildcard.header("Content-Encoding") == "gzip")

            let small = try client.request("GET", "/small", headers: [("Accept-Encoding", "gzip")])
            #expect(small.header("Content-Encoding") == nil)
            #expect(small.text == "tiny")
        }
    }

    @Test func stalledHalfRequestIsDroppedAfterTimeout() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 2)
        configuration.connectionTimeout = .seconds(1)
        try withServer(configuration) { server, _ in
            let stalled = try TestHTTPClient(port: server.port)
            try stalled.send("GET /echo HTTP/1.1\r\nHost: x\r\n")  // no blank line: the request never completes
            let start = monotonicSeconds()
            // Meanwhile the server keeps serving others.
            let other = try TestHTTPClient(port: server.port)
            #expect(try other.request("GET", "/echo").status == 200)
            #expect(stalled.waitForClose(timeout: 4))
            let elapsed = monotonicSeconds() - start
            #expect(elapsed > 0.5)
            #expect(elapsed < 3.5)
            let after = try TestHTTPClient(port: server.port)
            #expect(try after.request("GET", "/echo").status == 200)
        }
    }

    @Test func clientDisconnectingMidResponseDoesNotHurtTheServer() throws {
        // Make SIGPIPE fatal for the duration, in case the test runner ignores it: a send() without
        // MSG_NOSIGNAL on the reset socket would then kill the process and fail the run.
        let previous = signal(SIGPIPE, SIG_DFL)
        defer { signal(SIGPIPE, previous) }
        try withServer { server, _ in
            for useReset in [false, true] {
                let client = try TestHTTPClient(port: server.port)
                try client.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                let head = try client.readHead()
                #expect(head.status == 200)
                #expect(head.header("Content-Length") == String(8 << 20))
                _ = client.readAvailable(timeout: 1)
                if useReset { client.reset() } else { client.close() }
            }
            usleep(100_000)
            let client = try TestHTTPClient(port: server.port)
            #expect(try client.request("GET", "/echo").status == 200)
        }
    }

    @Test func headerFloodGetsAnErrorStatus() throws {
        try withServer { server, _ in
            // Many headers.
            let many = try TestHTTPClient(port: server.port)
            var head = "GET /echo HTTP/1.1\r\nHost: x\r\n"
            for index in 0..<2000 {
                head += "X-Flood-\(index): \(String(repeating: "v", count: 20))\r\n"
            }
            try? many.send(head + "\r\n")
            let manyResponse = try many.readResponse()
            #expect([413, 414, 431].contains(manyResponse.status))
            #expect(many.waitForClose(timeout: 2))

            // One huge header.
            let huge = try TestHTTPClient(port: server.port)
            try? huge.send("GET /echo HTTP/1.1\r\nHost: x\r\nX-Huge: \(String(repeating: "h", count: 100_000))\r\n\r\n")
            let hugeResponse = try huge.readResponse()
            #expect([413, 414, 431].contains(hugeResponse.status))

            // A long URL.
            let longURL = try TestHTTPClient(port: server.port)
            try? longURL.send("GET /echo?\(String(repeating: "q", count: 100_000)) HTTP/1.1\r\nHost: x\r\n\r\n")
            let longResponse = try longURL.readResponse()
            #expect([413, 414, 431].contains(longResponse.status))

            // Headers within the budget still work.
            let normal = try TestHTTPClient(port: server.port)
            let fine = try normal.request(
                "GET",
                "/header?name=X-Big",
                headers: [("X-Big", String(repeating: "b", count: 8000))]
            )
            #expect(fine.status == 200)
            #expect(fine.body.count == 8000)
        }
    }

    /// A request head of exactly `size` bytes (request line, headers, blank line) made of header lines of
    /// `lineLength` bytes each (CRLF included); the last header takes what is left.
    private func requestHead(size: Int, lineLength: Int) -> String {
        var head = "GET /echo HTTP/1.1\r\nHost: x\r\n"
        var index = 0
        while true {
            let left = size - head.utf8.count - 2  // the blank line
            let line = "X-H\(String(index, radix: 10)): "
            if left < 2 * lineLength {
                head += "X-Last: " + String(repeating: "z", count: left - 10) + "\r\n"
                break
            }
            head += line + String(repeating: "v", count: lineLength - line.utf8.count - 2) + "\r\n"
            index += 1
        }
        return head + "\r\n"
    }

    @Test(arguments: [64, 100, 1000, 4000])
    func headersUpToTheBudgetAreAccepted(lineLength: Int) throws {
        let budget = 4096
        try withServer(HTTPServerConfiguration(port: 0, threadCount: 2, maxHeaderBytes: budget)) { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let head = requestHead(size: budget, lineLength: lineLength)
            #expect(head.utf8.count == budget)
            try client.send(head)
            #expect(try client.readResponse().status == 200)
            // The connection stays usable (keep-alive).
            #expect(try client.request("GET", "/echo").status == 200)
        }
    }

    @Test func headersFarAboveTheBudgetAreRefusedWith431() throws {
        let budget = 4096
        try withServer(HTTPServerConfiguration(port: 0, threadCount: 2, maxHeaderBytes: budget)) { server, _ in
            // Twice the memory pool: whatever the line lengths, this cannot fit. Long lines leave room
            // for the 431 answer; with short ones the text and the per-line bookkeeping can use up the
            // pool together, and then the connection is closed without an answer (documented).
            for lineLength in [64, 1000, 30000] {
                let client = try TestHTTPClient(port: server.port)
                try? client.send(requestHead(size: 4 * budget + 4096, lineLength: lineLength))
                let status = (try? client.readResponse())?.status
                if lineLength == 64 {
                    #expect(status == nil || status == 431, "lines of \(lineLength) bytes")
                } else {
                    #expect(status == 431, "lines of \(lineLength) bytes")
                }
                #expect(client.waitForClose(timeout: 2))
            }
            #expect(try TestHTTPClient(port: server.port).request("GET", "/echo").status == 200)
        }
    }

    @Test func handlerMistakesAreContained() throws {
        let log = Mutex<[String]>([])
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 1)
        configuration.errorLog = { line in log.withLock { $0.append(line) } }
        try withServer(configuration) { server, _ in
            let client = try TestHTTPClient(port: server.port)
            let badStatus = try client.request("GET", "/bad-status")
            #expect(badStatus.status == 500)
            #expect(badStatus.header("Content-Type") == "text/plain; charset=utf-8")
            #expect(badStatus.text.hasPrefix("internal_error: "))
            let badHeader = try client.request("GET", "/bad-header")
            #expect(badHeader.status == 200)
            #expect(badHeader.text == "ok")
            #expect(badHeader.header("Content-Length") == "2")
            #expect(badHeader.header("X-Fine") == "yes")
            // A stream with an invalid status, for GET and HEAD alike (a negative status must not trap).
            for method in ["GET", "HEAD"] {
                let badStream = try client.request(method, "/bad-stream-status")
                #expect(badStream.status == 500, "\(method)")
            }
        }
        let lines = log.withLock { $0 }
        #expect(lines.contains { $0.contains("invalid status 42") })
        #expect(lines.contains { $0.contains("invalid status -1") })
        #expect(lines.contains { $0.contains("Content-Length") })
    }

    @Test func startErrorsAreReported() throws {
        try withServer { server, _ in
            #expect(throws: MicroHTTPError.self) {
                _ = try HTTPServer(
                    configuration: HTTPServerConfiguration(port: server.port),
                    handler: TestHandler(hub: StreamHub())
                )
            }
            let log = Mutex<[String]>([])
            do {
                var configuration = HTTPServerConfiguration(port: server.port)
                configuration.errorLog = { line in log.withLock { $0.append(line) } }
                _ = try HTTPServer(configuration: configuration, handler: TestHandler(hub: StreamHub()))
            } catch let error as MicroHTTPError {
                #expect(error.code == .addressInUse)
                #expect(error.message.contains("\(server.port)"))
            }
            #expect(log.withLock { $0 }.contains { $0.contains("Address already in use") })
        }
        do {
            _ = try HTTPServer(
                configuration: HTTPServerConfiguration(host: "localhost", port: 0),
                handler: TestHandler(hub: StreamHub())
            )
            Issue.record("a host name must be rejected")
        } catch let error as MicroHTTPError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("localhost"))
        }
        do {
            _ = try HTTPServer(
                configuration: HTTPServerConfiguration(port: 70000),
                handler: TestHandler(hub: StreamHub())
            )
            Issue.record("port 70000 must be rejected")
        } catch let error as MicroHTTPError {
            #expect(error.code == .invalidConfiguration)
        }
    }

    @Test func ipv6LoopbackWorks() throws {
        let probe = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(probe) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        inet_pton(AF_INET6, "::1", &address.sin6_addr)
        let canBind =
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            } == 0
        guard canBind else { return }  // no IPv6 loopback in this environment
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(host: "::1", port: 0, threadCount: 1),
            handler: TestHandler(hub: StreamHub())
        )
        defer { server.shutdown(gracePeriod: .zero) }
        #expect(server.port > 0)
    }

    @Test func gracefulShutdownLetsInFlightRequestFinish() throws {
        let hub = StreamHub()
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 2),
            handler: TestHandler(hub: hub)
        )
        let port = server.port
        let client = try TestHTTPClient(port: port)
        try client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(waitUntil(timeout: 5) { hub.slowRequestsStarted.load(ordering: .relaxed) == 1 })
        let shutdownBox = ShutdownBox(server: server)
        let start = monotonicSeconds()
        var thread = pthread_t()
        let box = Unmanaged.passRetained(shutdownBox).toOpaque()
        pthread_create(
            &thread,
            nil,
            { argument in
                let box = Unmanaged<ShutdownBox>.fromOpaque(argument!).takeRetainedValue()
                box.server.shutdown(gracePeriod: .seconds(5))
                box.finished.store(true, ordering: .releasing)
                return nil
            },
            box
        )
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.text == "slow done")
        #expect(response.header("Connection")?.lowercased() == "close")
        pthread_join(thread, nil)
        let finished = shutdownBox.finished.load(ordering: .acquiring)
        #expect(finished)
        #expect(monotonicSeconds() - start < 3)
        #expect(throws: TestClientError.self) { _ = try TestHTTPClient(port: port) }
        server.shutdown(gracePeriod: .zero)  // idempotent
    }

    @Test func shutdownGracePeriodIsBounded() throws {
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 2),
            handler: TestHandler(hub: StreamHub())
        )
        // A request whose body never completes stays in flight.
        let client = try TestHTTPClient(port: server.port)
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        usleep(100_000)
        let start = monotonicSeconds()
        server.shutdown(gracePeriod: .milliseconds(300))
        let elapsed = monotonicSeconds() - start
        #expect(elapsed >= 0.25)
        #expect(elapsed < 2)
        #expect(client.waitForClose(timeout: 2))
    }
}

final class ShutdownBox: Sendable {
    let server: HTTPServer
    let finished: Atomic<Bool>

    init(server: HTTPServer) {
        self.server = server
        self.finished = Atomic(false)
    }
}

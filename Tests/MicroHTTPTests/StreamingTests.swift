import HTTPTestSupport
import Synchronization
import Testing

@testable import MicroHTTP

#if canImport(Glibc)
import Glibc
#endif

extension ServerTests {
    /// Opens `/stream` and reads the head and the greeting chunk.
    private func openStream(port: Int) throws -> TestHTTPClient {
        let client = try TestHTTPClient(port: port)
        try client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try client.readHead()
        #expect(head.status == 200)
        #expect(head.header("Content-Type") == "text/event-stream")
        #expect(head.header("Transfer-Encoding")?.lowercased() == "chunked")
        #expect(try client.readChunk() == Array(": hello\n\n".utf8))
        return client
    }

    @Test func streamReceivesChunksWrittenLaterFromAnotherThread() throws {
        try withServer { server, hub in
            let client = try openStream(port: server.port)
            #expect(waitUntil(timeout: 2) { hub.count == 1 })
            let writer = try #require(hub.all.first)

            // Written after the reader found nothing and suspended the connection.
            usleep(200_000)
            var thread = pthread_t()
            let box = Unmanaged.passRetained(writer).toOpaque()
            pthread_create(
                &thread,
                nil,
                { argument in
                    let writer = Unmanaged<HTTPStreamWriter>.fromOpaque(argument!).takeRetainedValue()
                    _ = writer.write("data: one\n\n")
                    usleep(100_000)
                    _ = writer.write("data: two\n\n")
                    return nil
                },
                box
            )
            #expect(try client.readChunk() == Array("data: one\n\n".utf8))
            #expect(try client.readChunk() == Array("data: two\n\n".utf8))
            pthread_join(thread, nil)

            // A burst larger than one reader call arrives complete and in order.
            let burst = (0..<2000).map { "data: \($0)\n\n" }.joined()
            #expect(writer.write(burst))
            var received: [UInt8] = []
            while received.count < burst.utf8.count {
                received += try #require(try client.readChunk())
            }
            #expect(received == Array(burst.utf8))

            // finish() ends the chunked body; the connection stays usable (keep-alive).
            writer.finish()
            #expect(try client.readChunk() == nil)
            #expect(writer.isClosed)
            #expect(!writer.write("late"))
            #expect(try client.request("GET", "/echo").status == 200)
            #expect(hub.closed == 1)
        }
    }

    @Test func concurrentWritesWhileParkingAndResumingKeepEveryByteInOrder() throws {
        try withServer { server, hub in
            var clients: [TestHTTPClient] = []
            for _ in 0..<8 {
                clients.append(try openStream(port: server.port))
            }
            #expect(waitUntil(timeout: 2) { hub.count == 8 })
            let writers = hub.all
            let messageCount = 3000
            // Two writer threads, four streams each; short pauses make the readers park and resume often.
            var threads: [pthread_t] = []
            for half in 0..<2 {
                let group = WriterGroup(
                    writers: Array(writers[(half * 4)..<(half * 4 + 4)]),
                    messageCount: messageCount
                )
                var thread = pthread_t()
                pthread_create(
                    &thread,
                    nil,
                    { argument in
                        let group = Unmanaged<WriterGroup>.fromOpaque(argument!).takeRetainedValue()
                        for index in 0..<group.messageCount {
                            for writer in group.writers {
                                while !writer.write("m\(index)\n") {
                                    usleep(100)  // pending limit reached: wait for the client
                                }
                            }
                            if index % 7 == 0 { usleep(50) }
                        }
                        return nil
                    },
                    Unmanaged.passRetained(group).toOpaque()
                )
                threads.append(thread)
            }
            let expected = Array((0..<messageCount).map { "m\($0)\n" }.joined().utf8)
            // Read the streams round-robin so that no writer waits on an unread client for long.
            var received = [[UInt8]](repeating: [], count: clients.count)
            while received.contains(where: { $0.count < expected.count }) {
                for index in clients.indices where received[index].count < expected.count {
                    received[index] += try #require(try clients[index].readChunk())
                }
            }
            for thread in threads {
                pthread_join(thread, nil)
            }
            for index in clients.indices {
                #expect(received[index] == expected)
            }
            for writer in writers {
                writer.finish()
            }
            for client in clients {
                #expect(try client.readChunk() == nil)
            }
        }
    }

    @Test func idleStreamClientDisconnectIsNoticed() throws {
        try withServer { server, hub in
            let client = try openStream(port: server.port)
            #expect(waitUntil(timeout: 2) { hub.count == 1 })
            let writer = try #require(hub.all.first)
            usleep(100_000)  // let the stream go idle (suspended)
            #expect(!writer.isClosed)
            client.close()
            // Noticed without any write from the application.
            #expect(waitUntil(timeout: 2) { writer.isClosed })
            #expect(waitUntil(timeout: 2) { hub.closed == 1 })
            #expect(!writer.write("data: gone\n\n"))
            // The server keeps serving.
            let other = try TestHTTPClient(port: server.port)
            #expect(try other.request("GET", "/echo").status == 200)
        }
    }

    @Test func idleStreamClientHalfCloseIsTreatedAsAHangup() throws {
        // Documented in HangupMonitor: a FIN is a FIN, whether the client closed or only shut down writing.
        try withServer { server, hub in
            let client = try openStream(port: server.port)
            #expect(waitUntil(timeout: 2) { hub.count == 1 })
            let writer = try #require(hub.all.first)
            usleep(100_000)  // idle (suspended)
            #expect(!writer.isClosed)
            #expect(shutdown(client.fd, Int32(SHUT_WR)) == 0)
            #expect(waitUntil(timeout: 2) { writer.isClosed })
            #expect(client.waitForClose(timeout: 2))
        }
    }

    @Test func aSocketThatCannotBeWatchedIsLogged() throws {
        let lines = Mutex<[String]>([])
        let monitor = try HangupMonitor(log: { line in lines.withLock { $0.append(line) } }, onHangup: { _ in })
        defer { monitor.stop() }
        // epoll refuses regular files (EPERM).
        let file = try #require(tmpfile())
        defer { fclose(file) }
        monitor.watch(fd: fileno(file), token: 7)
        monitor.watch(fd: fileno(file), token: 8)  // logged once, not at every park
        let logged = lines.withLock { $0 }
        #expect(logged.count == 1)
        #expect(logged.first?.contains("cannot watch an idle stream") == true)
    }

    @Test func abortClosesTheConnectionWithoutSendingWhatIsPending() throws {
        try withServer { server, hub in
            let client = try openStream(port: server.port)
            #expect(waitUntil(timeout: 2) { hub.count == 1 })
            let writer = try #require(hub.all.first)
            #expect(writer.write("data: first\n\n"))
            #expect(try client.readChunk() == Array("data: first\n\n".utf8))
            // Queue a lot while the client is not reading, then abort: the rest is dropped.
            let block = [UInt8](repeating: 0x78, count: 16 * 1024)
            while writer.write(block) {}
            writer.abort()
            #expect(writer.isClosed)
            #expect(!writer.write("data: after\n\n"))
            #expect(waitUntil(timeout: 2) { hub.closed == 1 })
            // Reading now drains at most what was already handed to the socket, then the connection ends.
            #expect(client.waitForClose(timeout: 5))
            let other = try TestHTTPClient(port: server.port)
            #expect(try other.request("GET", "/echo").status == 200)
        }
    }

    @Test func streamBufferLimitRefusesWritesForASlowClient() throws {
        try withServer { server, hub in
            let client = try openStream(port: server.port)
            #expect(waitUntil(timeout: 2) { hub.count == 1 })
            let writer = try #require(hub.all.first)
            // The client does not read; socket buffers fill up, then the 64 KiB pending limit is hit.
            let block = [UInt8](repeating: 0x78, count: 16 * 1024)
            var accepted = 0
            for _ in 0..<2000 {
                if !writer.write(block) { break }
                accepted += 1
            }
            #expect(accepted < 2000)
            #expect(writer.pendingByteCount <= 64 * 1024)
            writer.finish()
            client.close()
        }
    }

    @Test func manyIdleStreamsDoNotBurnCPU() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 2)
        configuration.connectionTimeout = .seconds(1)  // suspended streams must not time out either
        try withServer(configuration) { server, hub in
            var clients: [TestHTTPClient] = []
            for _ in 0..<200 {
                let client = try TestHTTPClient(port: server.port)
                try client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
                clients.append(client)
            }
            #expect(waitUntil(timeout: 5) { hub.count == 200 })
            for client in clients {
                #expect(try client.readHead().status == 200)
                _ = try client.readChunk()
            }
            usleep(200_000)

            // The server's threads only: the process also runs the other suites' tests meanwhile.
            let threads = hub.serverThreads.withLock { $0 }
            #expect(!threads.isEmpty)
            let cpuBefore = threadCPUSeconds(threads)
            let wallBefore = monotonicSeconds()
            usleep(2_000_000)
            let cpu = threadCPUSeconds(threads) - cpuBefore
            let wall = monotonicSeconds() - wallBefore
            // A reader returning 0 without suspending would spin a core: cpu ≈ wall.
            #expect(cpu < 0.1 * wall, "the server used \(cpu) s CPU in \(wall) s with 200 idle streams")

            // Still alive after more than the connection timeout, and still deliverable.
            #expect(hub.all.allSatisfy { !$0.isClosed })
            for writer in hub.all {
                #expect(writer.write("data: wake\n\n"))
            }
            for client in clients.prefix(20) {
                #expect(try client.readChunk() == Array("data: wake\n\n".utf8))
            }
            for client in clients {
                client.close()
            }
            #expect(waitUntil(timeout: 5) { hub.closed == 200 })
        }
    }

    @Test func headOnAStreamRouteStartsNoStream() throws {
        try withServer { server, hub in
            let client = try TestHTTPClient(port: server.port)
            let head = try client.request("HEAD", "/stream")
            #expect(head.status == 200)
            #expect(head.header("Content-Type") == "text/event-stream")
            #expect(head.header("Transfer-Encoding") == nil)
            #expect(try client.request("GET", "/echo").status == 200)
            #expect(hub.count == 0)
        }
    }

    @Test func droppingTheServerStopsItEvenWithIdleStreams() throws {
        let hub = StreamHub()
        var port = 0
        var clients: [TestHTTPClient] = []
        do {
            let server = try HTTPServer(
                configuration: HTTPServerConfiguration(port: 0, threadCount: 2),
                handler: TestHandler(hub: hub)
            )
            port = server.port
            for _ in 0..<3 {
                clients.append(try openStream(port: port))
            }
            #expect(waitUntil(timeout: 2) { hub.count == 3 })
            usleep(100_000)
        }  // no shutdown call: deinit stops the daemon
        #expect(hub.all.allSatisfy { $0.isClosed })
        #expect(hub.closed == 3)
        for client in clients {
            // With no grace period the final chunk may or may not make it out; the connection ends either way.
            _ = try? client.readChunk()
            #expect(client.waitForClose(timeout: 2))
        }
        #expect(throws: TestClientError.self) { _ = try TestHTTPClient(port: port) }
    }

    @Test func shutdownEndsOpenStreams() throws {
        let hub = StreamHub()
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(port: 0, threadCount: 2),
            handler: TestHandler(hub: hub)
        )
        var clients: [TestHTTPClient] = []
        for _ in 0..<5 {
            clients.append(try openStream(port: server.port))
        }
        #expect(waitUntil(timeout: 2) { hub.count == 5 })
        usleep(100_000)
        _ = hub.all[0].write("data: last\n\n")
        let start = monotonicSeconds()
        server.shutdown(gracePeriod: .seconds(3))
        #expect(monotonicSeconds() - start < 2)
        #expect(hub.all.allSatisfy { $0.isClosed })
        #expect(hub.closed == 5)
        #expect(try clients[0].readChunk() == Array("data: last\n\n".utf8))
        #expect(try clients[0].readChunk() == nil)
        for client in clients.dropFirst() {
            #expect(try client.readChunk() == nil)
        }
    }
}

final class WriterGroup: Sendable {
    let writers: [HTTPStreamWriter]
    let messageCount: Int

    init(writers: [HTTPStreamWriter], messageCount: Int) {
        self.writers = writers
        self.messageCount = messageCount
    }
}

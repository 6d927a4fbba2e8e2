import HTTPTestSupport
import Synchronization
import Testing

@testable import MicroHTTP

#if canImport(Glibc)
import Glibc
#endif

struct ConnectionLimitTests {
    @Test func aClientOverItsLimitIsRefusedAtOnceAndCounted() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 1)
        configuration.perIPConnectionLimit = 2
        try withServer(configuration) { server, _ in
            let first = try TestHTTPClient(port: server.port)
            let second = try TestHTTPClient(port: server.port)
            #expect(try first.request("GET", "/echo").status == 200)
            #expect(try second.request("GET", "/echo").status == 200)
            let third = try TestHTTPClient(port: server.port)
            #expect(third.waitForClose(timeout: 1))
            let statistics = server.connectionStatistics
            #expect(statistics.refusedPerClientLimit == 1)
            #expect(statistics.open == 2)
            // A slot freed is a slot the client can use again.
            first.close()
            #expect(waitUntil(timeout: 5) { server.connectionStatistics.open == 1 })
            #expect(try TestHTTPClient(port: server.port).request("GET", "/echo").status == 200)
        }
    }

    @Test func theServerOverItsLimitRefusesAtOnceAndCounts() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 1)
        configuration.connectionLimit = 2
        try withServer(configuration) { server, _ in
            let kept = try (0..<2).map { _ in try TestHTTPClient(port: server.port) }
            for client in kept { #expect(try client.request("GET", "/echo").status == 200) }
            let refused = try TestHTTPClient(port: server.port)
            #expect(refused.waitForClose(timeout: 1))
            #expect(server.connectionStatistics.refusedConnectionLimit == 1)
            #expect(server.connectionStatistics.limit == 2)
        }
    }

    @Test func aHeadDrippedSlowerThanTheDeadlineIsCutOffButAnIdleConnectionIsNot() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 1)
        configuration.headerTimeout = .seconds(1)
        try withServer(configuration) { server, _ in
            let idle = try TestHTTPClient(port: server.port)
            #expect(try idle.request("GET", "/echo").status == 200)
            let dripping = try TestHTTPClient(port: server.port)
            try dripping.send("GET /echo HTTP/1.1\r\nHost: x\r\n")
            let start = monotonicSeconds()
            var closed = false
            while !closed, monotonicSeconds() - start < 3 {
                try? dripping.send("X")
                closed = dripping.waitForClose(timeout: 0.3)
            }
            let elapsed = monotonicSeconds() - start
            #expect(closed)
            #expect(elapsed >= 0.9 && elapsed < 2.5, "cut off after \(elapsed) s")
            #expect(server.connectionStatistics.headerTimeouts == 1)
            // The idle keep-alive connection sent no byte since its request: no deadline runs for it.
            #expect(!idle.waitForClose(timeout: 0.2))
            #expect(try idle.request("GET", "/echo").status == 200)
        }
    }

    @Test func aBodyThatTricklesIsCutOffAtItsDeadline() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 1)
        configuration.bodyTimeout = .seconds(1)
        try withServer(configuration) { server, _ in
            let client = try TestHTTPClient(port: server.port)
            try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            let start = monotonicSeconds()
            var closed = false
            while !closed, monotonicSeconds() - start < 3 {
                try? client.send("b")
                closed = client.waitForClose(timeout: 0.3)
            }
            #expect(closed)
            #expect(server.connectionStatistics.bodyTimeouts == 1)
        }
    }

    @Test(arguments: [(99, 200), (100, 200), (101, 414), (250, 414)])
    func queriesOverTheParameterLimitAreAnsweredAtOnce(count: Int, status: Int) throws {
        try withServer { server, _ in
            let query = (0..<count).map { "p\($0)=1" }.joined(separator: "&")
            let start = monotonicSeconds()
            let response = try TestHTTPClient(port: server.port).request("GET", "/echo?\(query)")
            #expect(monotonicSeconds() - start < 1)
            #expect(response.status == status)
            if status == 414 { #expect(response.text.hasPrefix("too_many_query_parameters: ")) }
        }
    }

    @Test func theQueryLimitIsBoundedByTheConnectionMemory() {
        var configuration = HTTPServerConfiguration(port: 0, maxHeaderBytes: 1024)
        #expect(configuration.effectiveMaxQueryParameters == (2 * 1024 + 2048) / 128)
        configuration.maxHeaderBytes = 8 * 1024
        #expect(configuration.effectiveMaxQueryParameters == 100)
    }
}

/// A transport that records parking without a connection.
private final class ParkingRecorder: HTTPStreamTransport {
    func park() {}
    func unpark() {}
}

struct StreamWriterAccountingTests {
    @Test func abortCountsTheMessagesNotHandedToTheConnection() {
        let writer = HTTPStreamWriter(bufferLimit: 1000, transport: ParkingRecorder())
        #expect(writer.write(Array(repeating: 1, count: 10), isMessage: false))  // a comment
        for _ in 0..<5 { #expect(writer.write(Array(repeating: 2, count: 10))) }
        // The connection takes 25 bytes: the comment, one message, half of the next.
        _ = writer.drain(maximum: 25) { _ in }
        #expect(writer.abort() == 4)  // the half-taken one and the three never handed over
        #expect(writer.abort() == nil)  // once
    }

    @Test func messagesInFlightAtAbortCountAsLostOnlyIfNeverConfirmed() {
        let lost = SharedTotal()
        let delivered = HTTPStreamWriter(bufferLimit: 1000, transport: ParkingRecorder())
        for _ in 0..<3 { delivered.write(Array(repeating: 2, count: 10)) }
        _ = delivered.drain(maximum: 30) { _ in }  // all three handed over, not yet confirmed
        #expect(delivered.abort(whenInFlightLost: { lost.add($0) }) == 0)
        _ = delivered.drain(maximum: 30) { _ in }  // the connection asks again: they were written
        delivered.connectionEnded()
        #expect(lost.value == 0)

        let stalled = HTTPStreamWriter(bufferLimit: 1000, transport: ParkingRecorder())
        for _ in 0..<3 { stalled.write(Array(repeating: 2, count: 10)) }
        _ = stalled.drain(maximum: 30) { _ in }
        #expect(stalled.abort(whenInFlightLost: { lost.add($0) }) == 0)
        stalled.connectionEnded()  // closed (a timeout) without asking again: they never left
        #expect(lost.value == 3)
    }
}

private final class SharedTotal: Sendable {
    private let total = Atomic<Int>(0)
    func add(_ count: Int) { total.add(count, ordering: .relaxed) }
    var value: Int { total.load(ordering: .relaxed) }
}

struct ClientAddressTests {
    /// The key of the IPv6 address `text`, through the socket-address path libmicrohttpd uses.
    private func key(ipv6 text: String) -> ClientAddress? {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        guard inet_pton(AF_INET6, text, &address.sin6_addr) == 1 else { return nil }
        return key(of: address)
    }

    private func key(ipv4 text: String) -> ClientAddress? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, text, &address.sin_addr) == 1 else { return nil }
        return key(of: address)
    }

    private func key<Address>(of address: Address) -> ClientAddress? {
        withUnsafeBytes(of: address) { bytes in
            bytes.withMemoryRebound(to: sockaddr.self) { ClientAddress($0.baseAddress, length: bytes.count) }
        }
    }

    @Test func anIPv6ClientIsItsSlash64() {
        #expect(key(ipv6: "2001:db8:1:2::1") == key(ipv6: "2001:db8:1:2:ffff:1234:5678:9abc"))
        #expect(key(ipv6: "2001:db8:1:2::1") != key(ipv6: "2001:db8:1:3::1"))
    }

    @Test func ipv4AndItsMappedFormAreOneClientAndAddressesDiffer() {
        #expect(key(ipv4: "192.0.2.7") != nil)
        #expect(key(ipv4: "192.0.2.7") == key(ipv6: "::ffff:192.0.2.7"))
        #expect(key(ipv4: "192.0.2.7") != key(ipv4: "192.0.2.8"))
        #expect(key(ipv6: "::ffff:192.0.2.7") != key(ipv6: "::ffff:192.0.2.8"))
    }

    @Test func linkLocalAndLoopbackKeepTheWholeAddress() {
        #expect(key(ipv6: "fe80::1") != key(ipv6: "fe80::2"))
        #expect(key(ipv6: "febf::1") != key(ipv6: "febf::2"))
        #expect(key(ipv6: "fec0::1") == key(ipv6: "fec0::2"))  // outside fe80::/10
        #expect(key(ipv6: "::1") != key(ipv6: "::2"))
    }

    @Test func anotherFamilyHasNoKey() {
        var address = sockaddr()
        address.sa_family = sa_family_t(AF_UNIX)
        #expect(key(of: address) == nil)
        #expect(ClientAddress(nil, length: 0) == nil)
    }
}

struct ConnectionRecordTests {
    @Test func thePhaseWordChangesWithEveryTransitionEvenWithinOneTick() {
        let record = ConnectionRecord(socket: -1, client: .unknown)
        #expect(record.phase.phase == .waitingOnNewConnection)
        var words: Set<UInt64> = [record.phaseWord]
        for _ in 0..<100 {
            record.headReceived()
            #expect(record.phase.phase == .receivingBody)
            record.bodyReceived()
            #expect(record.phase.phase == .answering)
            record.requestCompleted()
            #expect(record.phase.phase == .waitingAfterRequest)
            words.insert(record.phaseWord)
        }
        #expect(words.count == 101)
        let (_, since, _) = record.phase
        #expect(abs(since - ConnectionRecord.now()) < 1000)
    }
}

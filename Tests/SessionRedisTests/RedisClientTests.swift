import Dispatch
import Glibc
import Synchronization
import Testing

@testable import SessionRedis

@Suite(.serialized)
struct RedisClientTests {
    private func client(_ redis: RedisProcess, timeout: Duration = .milliseconds(250)) -> RedisClient {
        RedisClient(
            configuration: .init(endpoint: RedisEndpoint(host: "127.0.0.1", port: redis.port), timeout: timeout)
        )
    }

    @Test func concurrentCommandsArePipelinedAndEachGetsItsOwnAnswer() throws {
        let redis = RedisProcess()
        try redis.start()
        // 4,000 commands on one connection: more than the default 250 ms for the last of them on a
        // loaded machine.
        let client = client(redis, timeout: .seconds(5))
        defer { client.close() }
        let answers = Mutex<[Int: Int64]>([:])
        let done = DispatchGroup()
        DispatchQueue.concurrentPerform(iterations: 2000) { index in
            done.enter()
            client.send(["SET", "k\(index)", "\(index * 7)"]) { _ in
                client.send(["GET", "k\(index)"]) { result in
                    if case .success(let value) = result, let number = value.integer {
                        answers.withLock { $0[index] = number }
                    }
                    done.leave()
                }
            }
        }
        #expect(done.wait(timeout: .now() + 20) == .success)
        let all = answers.withLock { $0 }
        #expect(all.count == 2000)
        #expect(all.allSatisfy { $0.value == Int64($0.key * 7) })
        #expect(client.statistics.errors.isEmpty)
        #expect(client.isUp)
    }

    /// The tests' own servers: one whose port is taken fails to start, loudly, instead of leaving its
    /// test talking to the server that holds the port.
    @Test func aTestServerOnATakenPortIsAnError() throws {
        let first = RedisProcess()
        try first.start()
        #expect((20000..<32768).contains(first.port))
        let second = RedisProcess(port: first.port)
        #expect(throws: RedisProcessError.self) { try second.start() }
    }

    @Test func commandsQueuedWhileAnswersAreOnTheirWayLeaveTogetherInOrder() throws {
        let redis = RedisProcess()
        try redis.start()
        let client = client(redis, timeout: .seconds(5))
        defer { client.close() }
        // BLPOP of an empty list holds the connection's answers until another client pushes to the
        // list; the ECHOs sent meanwhile wait in the slot and leave in one write once its answer has
        // been read.
        let order = Mutex<[String]>([])
        let done = DispatchGroup()
        done.enter()
        client.send(["BLPOP", "held", "5"]) { _ in
            order.withLock { $0.append("blpop") }
            done.leave()
        }
        // The reader, woken by the BLPOP, writes what is queued once more before it waits for the
        // answer; ECHOs queued before that would leave early, in as many writes as the reader's loop
        // finds them. So the ECHOs are sent only once Redis holds the BLPOP and the reader has had
        // ample time to reach its read.
        #expect(redis.waitUntilAClientIsBlocked())
        usleep(200_000)
        let writesBefore = client.slots[0].writes.load(ordering: .relaxed)
        let answers = Mutex<[Int: String]>([:])
        DispatchQueue.concurrentPerform(iterations: 200) { index in
            done.enter()
            client.send(["ECHO", "answer \(index)"]) { result in
                order.withLock { $0.append("echo") }
                if case .success(let value) = result, let text = value.string {
                    answers.withLock { $0[index] = text }
                }
                done.leave()
            }
        }
        #expect(order.withLock { $0.isEmpty })
        #expect(client.slots[0].writes.load(ordering: .relaxed) == writesBefore)
        let releaser = self.client(redis)
        defer { releaser.close() }
        #expect(try releaser.sendAndWait(["RPUSH", "held", "go"]).get() == .integer(1))
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(order.withLock { $0.first } == "blpop")
        let all = answers.withLock { $0 }
        #expect(all.count == 200)
        #expect(all.allSatisfy { $0.value == "answer \($0.key)" })
        #expect(client.slots[0].writes.load(ordering: .relaxed) - writesBefore <= 2)
    }

    @Test func argumentsAreBinarySafe() throws {
        let redis = RedisProcess()
        try redis.start()
        let client = client(redis)
        defer { client.close() }
        let key: [UInt8] = [0, 13, 10, 0xFF, 0x7B, 0x7D]
        let value: [UInt8] = [0, 1, 2, 13, 10, 0, 0xFE]
        #expect(try client.sendAndWait([Array("SET".utf8), key, value]).get() == .status("OK"))
        #expect(try client.sendAndWait([Array("GET".utf8), key]).get() == .bulk(value))
        #expect(try client.sendAndWait([Array("SET".utf8), Array("empty".utf8), []]).get() == .status("OK"))
        #expect(try client.sendAndWait(["GET", "empty"]).get() == .bulk([]))
        #expect(try client.sendAndWait(["NOSUCHCOMMAND"]).get().errorMessage?.hasPrefix("ERR") == true)
    }

    @Test func anUnreachableRedisFailsAtOnceAndIsFoundAgainWhenItStarts() throws {
        let redis = RedisProcess()
        let client = client(redis)
        defer { client.close() }
        // The first command finds nothing to connect to; then commands fail at once.
        #expect(throws: RedisClientError.self) { try client.sendAndWait(["PING"]).get() }
        let started = ContinuousClock.now
        #expect(throws: RedisClientError.self) { try client.sendAndWait(["PING"]).get() }
        #expect(ContinuousClock.now - started < .milliseconds(200))
        #expect(!client.isUp)
        #expect(client.statistics.errors[.connect, default: 0] >= 2)
        try redis.start()
        var answer: RedisValue?
        for _ in 0..<40 where answer == nil {
            answer = try? client.sendAndWait(["PING"]).get()
            if answer == nil { usleep(100_000) }
        }
        #expect(answer == .status("PONG"))
        #expect(client.isUp)
        #expect(client.statistics.reconnects == client.configuration.connections)  // each connection, once
    }

    @Test func aServerThatStopsAnsweringTimesOutWithinTheTimeoutAndIsUsedAgainAfterwards() throws {
        let redis = RedisProcess()
        try redis.start()
        let client = client(redis, timeout: .milliseconds(200))
        defer { client.close() }
        #expect(try client.sendAndWait(["PING"]).get() == .status("PONG"))
        redis.pause()
        let started = ContinuousClock.now
        let results = client.sendAllAndWait((0..<10).map { _ in [Array("PING".utf8)] })
        let elapsed = ContinuousClock.now - started
        redis.resume()
        #expect(results.allSatisfy { if case .failure(let error) = $0 { error.code == .timeout } else { false } })
        // One timeout for the ten (each after its own would take 2 s).
        #expect(elapsed < .milliseconds(1500), "\(elapsed)")
        var answer: RedisValue?
        for _ in 0..<40 where answer == nil {
            answer = try? client.sendAndWait(["PING"]).get()
            if answer == nil { usleep(50_000) }
        }
        #expect(answer == .status("PONG"))
    }

    @Test func closingFailsWhatIsQueuedAndRefusesMore() throws {
        let redis = RedisProcess()
        try redis.start()
        let client = client(redis)
        client.close()
        #expect(throws: RedisClientError(code: .closed, message: "the Redis client is closed")) {
            try client.sendAndWait(["PING"]).get()
        }
    }
}

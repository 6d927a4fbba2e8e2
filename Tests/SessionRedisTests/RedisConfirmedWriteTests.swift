import Dispatch
import Glibc
import Synchronization
import Testing

@testable import SessionRedis

/// ``RedisClient/sendConfirmed(_:completion:)`` against a primary and its replica of the test's own.
@Suite(.serialized)
struct RedisConfirmedWriteTests {
    /// A primary and one replica that confirms writes (Redis streams writes to a replica after its
    /// full sync only once the replica has acknowledged it, up to a second later).
    private func primaryWithReplica() throws -> (primary: RedisProcess, replica: RedisProcess) {
        // A full sync at once, sent over the socket and loaded from it: nothing on disk.
        let primary = RedisProcess(extraArguments: ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"])
        try primary.start()
        let replica = RedisProcess(extraArguments: [
            "--replicaof", "127.0.0.1", "\(primary.port)", "--repl-diskless-load", "on-empty-db",
        ])
        try replica.start()
        let probe = client(primary, replicas: 0)
        defer { probe.close() }
        for _ in 0..<100 {
            let answers = probe.sendPipelinedAndWait([
                ["SET", "probe", "1"].map { Array($0.utf8) }, ["WAIT", "1", "50"].map { Array($0.utf8) },
            ])
            if (try? answers[1].get()) == .integer(1) {
                _ = probe.sendAndWait(["DEL", "probe"])
                _ = probe.sendAndWait(["CONFIG", "RESETSTAT"])
                return (primary, replica)
            }
            usleep(50_000)
        }
        throw RedisProcessError(message: "the replica did not confirm writes")
    }

    /// Long enough for a replica resumed by SIGCONT to catch up and confirm on a loaded machine, and
    /// for what a test sends during a `WAIT` of a stopped replica to be sent well before it ends.
    private static let confirmationWait = Duration.seconds(2)

    private func client(_ redis: RedisProcess, replicas: Int) -> RedisClient {
        RedisClient(
            configuration: .init(
                endpoint: RedisEndpoint(host: "127.0.0.1", port: redis.port),
                timeout: .seconds(5),
                confirmingReplicas: replicas,
                confirmationWait: Self.confirmationWait
            )
        )
    }

    private func waitCalls(_ redis: RedisProcess) -> Int {
        let probe = client(redis, replicas: 0)
        defer { probe.close() }
        guard let stats = try? probe.sendAndWait(["INFO", "commandstats"]).get().string,
            let line = stats.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_wait:") }),
            let calls = line.split(separator: "calls=").dropFirst().first?.split(separator: ",").first
        else { return 0 }
        return Int(calls) ?? 0
    }

    @Test func theWritesQueuedDuringAWaitAreConfirmedByOneWait() throws {
        let (primary, replica) = try primaryWithReplica()
        defer { replica.stop() }
        let client = client(primary, replicas: 1)
        defer { client.close() }
        let answers = Mutex<[Int: Result<RedisValue, RedisClientError>]>([:])
        let done = DispatchGroup()
        func write(_ index: Int, then: @escaping @Sendable () -> Void = {}) {
            done.enter()
            client.sendConfirmed([Array("SET".utf8), Array("k\(index)".utf8), Array("\(index)".utf8)]) { result in
                answers.withLock { $0[index] = result }
                then()
                done.leave()
            }
        }
        // The first write's `WAIT` lasts its whole 2 s (the replica does not answer); the replica
        // answers again once that write is settled, and the 499 writes queued meanwhile follow it
        // with one `WAIT`.
        replica.pause()
        defer { replica.resume() }
        let replicaProcess = replica.processID
        write(0) { kill(replicaProcess, SIGCONT) }
        // The reader takes the answer to `SET k0` and writes what is queued once more before it
        // waits for the `WAIT`'s answer: writes queued before that would leave with a `WAIT` of their
        // own. So the others are sent only once Redis holds the `WAIT` and the reader has had ample
        // time to reach its read.
        #expect(primary.waitUntilAClientIsBlocked())
        usleep(200_000)
        let confirming = try #require(client.confirmingSlot)
        let writesBefore = confirming.writes.load(ordering: .relaxed)
        for index in 1..<500 { write(index) }
        #expect(confirming.writes.load(ordering: .relaxed) == writesBefore)
        #expect(done.wait(timeout: .now() + 20) == .success)
        let all = answers.withLock { $0 }
        #expect(all.count == 500)
        if case .failure(let error) = all[0] {
            #expect(error.code == .unconfirmed)
        } else {
            Issue.record("k0 confirmed")
        }
        #expect((1..<500).allSatisfy { (try? all[$0]?.get()) == .status("OK") })
        #expect(waitCalls(primary) == 2)
        // Every write is on the replica, the unconfirmed one too (carried out, not acknowledged).
        let onReplica = self.client(replica, replicas: 0)
        defer { onReplica.close() }
        #expect(try onReplica.sendAndWait(["GET", "k499"]).get() == .bulk(Array("499".utf8)))
        #expect(try onReplica.sendAndWait(["DBSIZE"]).get() == .integer(500))
    }

    @Test func readsDoNotQueueBehindAWaitAndAnUnconfirmedWriteFails() throws {
        let (primary, replica) = try primaryWithReplica()
        defer { replica.stop() }
        let client = client(primary, replicas: 1)
        defer { client.close() }
        #expect(try client.sendAndWait(["SET", "before", "1"]).get() == .status("OK"))
        // A replica that does not answer: the `WAIT` lasts its whole 2 s.
        replica.pause()
        defer { replica.resume() }
        let order = Mutex<[String]>([])
        let done = DispatchGroup()
        done.enter()
        let written = Mutex<Result<RedisValue, RedisClientError>?>(nil)
        client.sendConfirmed(["SET", "during", "1"].map { Array($0.utf8) }) { result in
            written.withLock { $0 = result }
            order.withLock { $0.append("write") }
            done.leave()
        }
        usleep(20_000)
        done.enter()
        client.send(["GET", "before"]) { result in
            if case .success(.bulk(let value)) = result, value == Array("1".utf8) {
                order.withLock { $0.append("read") }
            }
            done.leave()
        }
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(order.withLock { $0 } == ["read", "write"])
        let result = written.withLock { $0 }
        guard case .failure(let error) = result else {
            Issue.record("the unconfirmed write succeeded: \(String(describing: result))")
            return
        }
        #expect(error.code == .unconfirmed)
        #expect(error.message == "0 of 1 replicas confirmed the write in time")
    }

    @Test func anErrorReplyIsAnsweredAsItIsAndWithoutReplicasSendIsPlain() throws {
        let (primary, replica) = try primaryWithReplica()
        defer { replica.stop() }
        let client = client(primary, replicas: 1)
        defer { client.close() }
        let refused = client.sendAndWaitConfirmed(["NOSUCHCOMMAND"])
        #expect((try? refused.get())?.errorMessage?.hasPrefix("ERR") == true)
        let plain = self.client(primary, replicas: 0)
        defer { plain.close() }
        #expect(plain.confirmingSlot == nil)
        let waitsBefore = waitCalls(primary)
        #expect(try plain.sendAndWaitConfirmed(["SET", "plain", "1"]).get() == .status("OK"))
        #expect(waitCalls(primary) == waitsBefore)
    }
}

extension RedisClient {
    /// ``sendConfirmed(_:completion:)``, waiting.
    fileprivate func sendAndWaitConfirmed(_ arguments: [String]) -> Result<RedisValue, RedisClientError> {
        let done = DispatchSemaphore(value: 0)
        let box = Mutex<Result<RedisValue, RedisClientError>?>(nil)
        sendConfirmed(arguments.map { Array($0.utf8) }) { result in
            box.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return box.withLock { $0! }
    }
}

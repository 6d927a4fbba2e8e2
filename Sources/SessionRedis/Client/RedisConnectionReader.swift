/// The thread of one ``RedisConnectionSlot``: opens its connection (and opens it again after a
/// failure, with a growing pause), and reads the answers of the commands written to it, completing
/// each waiting command with its answer, oldest first.
struct RedisConnectionReader {
    let client: RedisClient
    let slot: RedisConnectionSlot
    /// Called once the first connection attempt succeeded or failed.
    let firstAttemptDone: @Sendable () -> Void

    func run() {
        var failedBefore = false
        var isFirstAttempt = true
        var pause = Duration.milliseconds(100)
        while !slot.isClosed {
            let connection: RedisConnection
            do {
                connection = try RedisConnection(
                    endpoint: client.configuration.endpoint,
                    timeout: client.configuration.timeout
                )
            } catch {
                if isFirstAttempt {
                    isFirstAttempt = false
                    firstAttemptDone()
                }
                failedBefore = true
                slot.pause(pause)
                pause = min(pause * 2, .seconds(1))
                continue
            }
            slot.opened(connection)
            if failedBefore { client.recordReconnect() }
            failedBefore = false
            pause = .milliseconds(100)
            if isFirstAttempt {
                isFirstAttempt = false
                firstAttemptDone()
            }
            let failure = read(connection)
            // The connection is gone: what waited for an answer fails, and it is opened again.
            let error = slot.isClosed ? RedisClientError(code: .closed, message: "the Redis client is closed") : failure
            var failed = 0
            for request in slot.lost() where request.complete(.failure(error)) { failed += 1 }
            client.record(error.code, count: failed)
            failedBefore = true
        }
        if isFirstAttempt { firstAttemptDone() }
    }

    /// Reads answers while commands wait for them; returns the error that ended the connection.
    private func read(_ connection: RedisConnection) -> RedisClientError {
        while true {
            guard slot.awaitWork(timeout: .seconds(1)) else {
                if slot.isClosed { return RedisClientError(code: .closed, message: "the Redis client is closed") }
                continue
            }
            do {
                // The answers already read first; then, before waiting for more, the commands queued
                // meanwhile (``RedisConnectionSlot/write(_:_:)``).
                if let reply = try connection.bufferedReply() {
                    slot.popOldest()?.complete(.success(reply))
                    continue
                }
                slot.flush()
                let reply = try connection.readReply()
                slot.popOldest()?.complete(.success(reply))
            } catch {
                return error
            }
        }
    }
}

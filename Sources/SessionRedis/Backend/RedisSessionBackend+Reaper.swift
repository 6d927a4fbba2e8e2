import SessionCore
import Synchronization

extension RedisSessionBackend {
    // MARK: Reaping

    /// Ends the sessions past a deadline in every partition, then calls `completion` with how many
    /// this call ended. Every instance runs it: a session ends once, in whichever call gets to it
    /// first (the functions re-check the stored deadline).
    ///
    /// One pipelined batch reads each partition's earliest deadline and Redis's time; only the
    /// partitions with a session due get a `sd1_reap` call (in batches of 256 sessions).
    /// While Redis is unreachable nothing is sent (the connections are retried in the background);
    /// on a cluster with a primary out of reach, the partitions of the others are reaped.
    public func reapExpired(completion: @escaping @Sendable (Int) -> Void) {
        guard client.isReachable else { return completion(0) }
        let commands: [[[UInt8]]] =
            [[Array("TIME".utf8)]]
            + (0..<store.partitions).map { partition in
                ["ZRANGE", RedisKeys.deadlines(partition), "0", "0", "WITHSCORES"].map { Array($0.utf8) }
            }
        let sent = RedisClockOffset.localMilliseconds()
        client.sendAll(commands) { [self] results in
            guard case .success(let time) = results[0], let parts = time.array, parts.count == 2,
                let seconds = parts[0].integer, let micros = parts[1].integer
            else { return completion(0) }
            let now = seconds * 1000 + micros / 1000
            redisClock.record(redisMilliseconds: now, sent: sent, received: RedisClockOffset.localMilliseconds())
            let due = results.dropFirst().enumerated().compactMap { partition, result -> Int? in
                guard case .success(let reply) = result, let earliest = reply.array, earliest.count == 2,
                    let score = earliest[1].string.flatMap(Double.init), Int64(score) <= now
                else { return nil }
                return partition
            }
            guard !due.isEmpty else {
                recordReaperRun(reaped: 0)
                return completion(0)
            }
            let remaining = Mutex((partitions: due.count, ended: 0))
            for partition in due {
                reap(partition: partition) { ended in
                    let done = remaining.withLock { state -> Int? in
                        state.partitions -= 1
                        state.ended += ended
                        return state.partitions == 0 ? state.ended : nil
                    }
                    if let done {
                        self.recordReaperRun(reaped: done)
                        completion(done)
                    }
                }
            }
        }
    }

    /// Reaps one partition a batch at a time.
    private func reap(partition: Int, ended total: Int = 0, completion: @escaping @Sendable (Int) -> Void) {
        call(RedisFunctionLibrary.reap, partition: partition, [Array("256".utf8)]) { [self] result in
            guard case .success(let reply) = result, let (status, rest) = RedisReplyDecoder.status(reply),
                status == "OK", rest.count == 2, let more = rest.first?.integer
            else { return completion(total) }
            let ended = RedisReplyDecoder.endedList(rest[rest.startIndex + 1])
            report(ended: ended)
            if more == 1 {
                reap(partition: partition, ended: total + ended.count, completion: completion)
            } else {
                completion(total + ended.count)
            }
        }
    }

    /// Copies the store's configuration to partitions that missed a change (an instance stopped
    /// between writing `sd:config` and the partitions), restores the store into a Redis that lost
    /// its data, and forgets sightings older than 15 minutes.
    public func repairStore(completion: @escaping @Sendable () -> Void) {
        let read = ["HMGET", RedisKeys.configuration, "idle", "life", "cap", "policy", "maxdata", "ver"]
        send(read.map { Array($0.utf8) }, operation: "configuration") { [self] result in
            guard case .success(let reply) = result else { return completion() }
            guard let fields = RedisConfigurationFields(reply: reply) else {
                // Redis answers, but without the store's configuration: it lost its data.
                restoreStore()
                return completion()
            }
            _ = remember(fields)
            copyToPartitions(fields) { [self] _ in
                let forget = (0..<store.partitions).map {
                    command(RedisFunctionLibrary.forgetSightings, partition: $0, withContext: false, [])
                }
                client.sendAll(forget) { _ in completion() }
            }
        }
    }

    /// Runs ``reapExpired(completion:)`` every `interval` and ``repairStore(completion:)`` every
    /// 5 seconds until the task is cancelled or the backend closed.
    public func runReaper(interval: Duration = .milliseconds(250)) async {
        var lastRepair = ContinuousClock.now
        while !Task.isCancelled && !isStopped {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                reapExpired { _ in continuation.resume() }
            }
            if ContinuousClock.now - lastRepair >= .seconds(5) {
                lastRepair = ContinuousClock.now
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    repairStore { continuation.resume() }
                }
            }
            try? await Task.sleep(for: interval)
        }
    }
}

import Dispatch
import SessionCore
import Synchronization

/// The tail on a Redis Cluster: looks at every partition's stream through the store's
/// ``RedisClusterClient`` (see ``RedisEventTail``).
extension RedisEventTail {
    /// Looks at the streams until stopped; after a failure (a primary out of reach or failing over)
    /// it looks again from the same positions, after checking that none was trimmed meanwhile.
    func run(_ client: RedisClusterClient) {
        let exchange: Exchange = { commands throws(RedisClientError) in
            var replies: [RedisValue] = []
            for result in client.sendAllAndWait(commands) {
                switch result {
                case .success(let reply): replies.append(reply)
                case .failure(let error): throw error
                }
            }
            return replies
        }
        var cursors: [String]?
        var latest = SessionEventPosition.zero
        var pending: [Entry] = []
        var failedBefore = false
        var pause = Duration.milliseconds(100)
        while !isStopped.load(ordering: .relaxed) {
            do {
                if cursors == nil {
                    cursors = try prime(exchange, latest: &latest)
                } else if failedBefore {
                    cursors = try checkContinuity(exchange, cursors: cursors!, latest: &latest)
                }
                failedBefore = false
                pause = .milliseconds(100)
                let arrived = try look(client, cursors: &cursors!, latest: &latest, pending: &pending)
                Self.sleep(arrived ? Self.clusterLookIntervals.flowing : Self.clusterLookIntervals.quiet)
            } catch {
                // A primary unreachable or failing over: try again, from the same positions.
                failedBefore = true
                Self.sleep(pause)
                pause = min(pause * 2, .seconds(1))
            }
        }
    }

    /// One look at every partition of a cluster (see the type's documentation); delivers what is
    /// complete and returns whether entries arrived. Entries read before a failure stay pending.
    private func look(
        _ client: RedisClusterClient,
        cursors: inout [String],
        latest: inout SessionEventPosition,
        pending: inout [Entry]
    ) throws(RedisClientError) -> Bool {
        let replies = Mutex([[Result<RedisValue, RedisClientError>]](repeating: [], count: partitions))
        let done = DispatchGroup()
        for partition in 0..<partitions {
            done.enter()
            client.sendPipelined([
                [Array("TIME".utf8)],
                ["XREAD", "COUNT", "1000", "STREAMS"].map { Array($0.utf8) }
                    + [streamKeys[partition], Array(cursors[partition].utf8)],
            ]) { results in
                replies.withLock { $0[partition] = results }
                done.leave()
            }
        }
        done.wait()
        var watermark = UInt64.max
        var failure: RedisClientError?
        var arrived = false
        for results in replies.withLock({ $0 }) {
            guard results.count == 2, case .success(let time) = results[0], case .success(let streams) = results[1],
                let clock = time.array, clock.count == 2, let seconds = clock[0].integer, let micros = clock[1].integer
            else {
                failure =
                    results.lazy.compactMap { result -> RedisClientError? in
                        if case .failure(let error) = result { return error }
                        return nil
                    }.first ?? RedisClientError(code: .reply, message: "unexpected answer to the event look")
                continue
            }
            if case .error(let message) = streams {
                failure = RedisClientError(code: .reply, message: message)
                continue
            }
            let entries = read(streams, cursors: &cursors)
            arrived = arrived || !entries.isEmpty
            pending += entries
            watermark = min(watermark, UInt64(seconds * 1000 + micros / 1000))
        }
        if let failure { throw failure }
        deliverComplete(&pending, before: watermark, latest: &latest)
        return arrived || !pending.isEmpty
    }
}

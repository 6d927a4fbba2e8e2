import Synchronization

extension SessionStore {
    // MARK: Expiry

    /// Ends every session whose deadline has passed, at most `batchSize` per shard lock hold, and
    /// forgets users whose last activity left the 15-minute window. Returns how many sessions ended.
    @discardableResult
    public func reapExpired(batchSize: Int = 1024) -> Int {
        let batchSize = max(1, batchSize)
        var total = 0
        for shard in shards {
            var more = true
            while more {
                let now = clock.nowMilliseconds()
                var removed: [RemovedSession] = []
                more = shard.state.withLock { state in state.reap(now: now, limit: batchSize, into: &removed) }
                finish(removed)
                total += removed.count
            }
        }
        return total
    }

    /// Calls ``reapExpired(batchSize:)`` every `interval` until the task is cancelled.
    public func runExpiryLoop(interval: Duration = .milliseconds(250)) async {
        while !Task.isCancelled {
            reapExpired()
            try? await Task.sleep(for: interval)
        }
    }
}

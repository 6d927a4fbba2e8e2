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
        let now = clock.nowMilliseconds()
        for tokenShard in tokenShards { tokenShard.pruneExpired(now: now) }
        return total
    }

    // MARK: Tokens of expired sessions

    /// Remembers the token of a session that ended by timeout at `endedAt`
    /// (``Configuration/expiredTokenRetention``). A session removed from its shard is remembered by
    /// ``ShardState/remove(_:reason:at:now:)`` itself, under the shard's lock.
    func rememberExpired(_ hash: TokenHash, reason: SessionEndReason, endedAt: Int64) {
        tokenShards[Int(truncatingIfNeeded: hash.w0) & mask]
            .rememberExpired(hash, reason: reason, endedAt: endedAt, now: clock.nowMilliseconds())
    }

    /// Why the session with this token ended, if it ended by timeout recently.
    func expiredReason(of hash: TokenHash) -> SessionEndReason? {
        tokenShards[Int(truncatingIfNeeded: hash.w0) & mask].expiredReason(of: hash, now: clock.nowMilliseconds())
    }

    /// The error for a token that names no live session: `session_expired` (with the reason) when its
    /// session ended by timeout recently, `session_unknown` otherwise.
    func noLiveSessionError(_ hash: TokenHash) -> SessionError {
        expiredReason(of: hash).map(Self.expiredError) ?? Self.unknownError
    }

    /// Calls ``reapExpired(batchSize:)`` every `interval` until the task is cancelled.
    public func runExpiryLoop(interval: Duration = .milliseconds(250)) async {
        while !Task.isCancelled {
            reapExpired()
            try? await Task.sleep(for: interval)
        }
    }
}

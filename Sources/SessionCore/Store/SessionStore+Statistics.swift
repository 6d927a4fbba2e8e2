import Synchronization

extension SessionStore {
    // MARK: Statistics

    /// Exact counts for gauges and counters; O(shards), independent of the number of sessions.
    public func statistics() -> SessionStatistics {
        var stats = SessionStatistics()
        var ended = [Int](repeating: 0, count: SessionEndReason.allCases.count)
        let nowSecond = clock.nowMilliseconds() / 1000
        for shard in shards {
            shard.state.withLock { state in
                stats.activeSessions += state.liveSessions
                stats.realtimeUsers += state.liveUsers
                stats.created += state.created
                stats.validationsValid += state.validationsValid
                stats.validationsExpired += state.validationsExpired
                for index in ended.indices { ended[index] += state.ended[index] }
                let seen = state.seen.count(now: nowSecond, windows: [60, 300, 900])
                stats.usersSeenLastMinute += seen[0]
                stats.usersSeenLast5Minutes += seen[1]
                stats.usersSeenLast15Minutes += seen[2]
            }
        }
        for reason in SessionEndReason.allCases { stats.ended[reason] = ended[reason.counterIndex] }
        for tokenShard in tokenShards {
            stats.validationsUnknown += tokenShard.unknownValidations.load(ordering: .relaxed)
            stats.validationsExpired += tokenShard.expiredValidations.load(ordering: .relaxed)
        }
        stats.validationsMalformed = malformedValidations.load(ordering: .relaxed)
        stats.droppedEvents = events.droppedEventCount
        stats.slowSubscribersDisconnected = events.slowConsumersDisconnectedCount
        return stats
    }

    /// Consistency problems across the whole store (empty when all is well): every session in
    /// exactly one shard and indexed by its token, the expiry wheel matching the table, counts equal
    /// to a recount. O(n) under each shard lock in turn; for tests and debugging.
    public func invariantViolations() -> [String] {
        var problems: [String] = []
        var indexed = 0
        for tokenShard in tokenShards { indexed += tokenShard.map.withLock { $0.count } }
        var live = 0
        for (index, shard) in shards.enumerated() {
            shard.state.withLock { state in
                problems += state.invariantViolations().map { "shard \(index): \($0)" }
                live += state.liveSessions
                for raw in 0..<state.entries.count where state.entries[Int32(raw)].isLive {
                    let entry = state.entries[Int32(raw)]
                    if Self.shardIndex(of: state.users[Int(entry.userSlot)].name, mask: mask) != index {
                        problems.append("shard \(index): user in wrong shard")
                    }
                    let packed = TokenIndexShard.pack(shard: index, slot: Int32(raw))
                    let tokenShard = tokenShards[Int(truncatingIfNeeded: entry.hash.w0) & mask]
                    if !tokenShard.map.withLock({ $0.contains(entry.hash.w0, value: packed) }) {
                        problems.append("shard \(index) slot \(raw): token index")
                    }
                }
            }
        }
        if indexed != live { problems.append("token index holds \(indexed), table \(live)") }
        return problems
    }
}

import Synchronization

extension SessionStore {
    // MARK: Operations by id and user

    /// The live session with this id, or `nil`. Does not slide it.
    public func session(id: SessionID) -> Session? {
        let now = clock.nowMilliseconds()
        for shardIndex in shardOrder(for: id) {
            let outcome = shards[shardIndex].state.withLock { (state: inout ShardState) -> LookupOutcome<Session>? in
                guard let slot = state.slot(of: id) else { return nil }
                let deadline = state.entries[slot].deadline
                guard now < deadline.at else {
                    return .expired(state.remove(slot, reason: deadline.reason, at: deadline.at, now: now))
                }
                return .found(state.snapshot(slot))
            }
            switch outcome {
            case nil: continue
            case .found(let session): return session
            case .expired(let removed):
                finish(removed)
                return nil
            case .unknown: return nil
            }
        }
        return nil
    }

    /// Ends the session with this id, reason `revoked`. Returns it, or `nil` if there is none.
    @discardableResult
    public func revoke(id: SessionID) -> Session? {
        let now = clock.nowMilliseconds()
        for shardIndex in shardOrder(for: id) {
            let result = shards[shardIndex].state.withLock { (state: inout ShardState) -> (Session, RemovedSession)? in
                guard let slot = state.slot(of: id) else { return nil }
                return (state.snapshot(slot), state.remove(slot, reason: .revoked, at: now, now: now))
            }
            if let (session, removed) = result {
                finish(removed)
                return session
            }
        }
        return nil
    }

    /// Ends every session of `username`, reason `revoked`; returns how many ended.
    @discardableResult
    public func revokeAll(username: String) -> Int {
        let now = clock.nowMilliseconds()
        let removed = shards[Self.shardIndex(of: username, mask: mask)].state.withLock {
            (state: inout ShardState) -> [RemovedSession] in
            guard let user = state.userIndex[UsernameKey(username)] else { return [] }
            var removed: [RemovedSession] = []
            while state.users[Int(user)].isLive, state.users[Int(user)].head >= 0 {
                removed.append(state.remove(state.users[Int(user)].head, reason: .revoked, at: now, now: now))
            }
            return removed
        }
        finish(removed)
        return removed.count
    }

    /// Ends every session, reason `revoked` (the Node library's `deleteAllSessions`), in batches so
    /// that other calls keep being served. Returns how many ended.
    @discardableResult
    public func deleteAll(batchSize: Int = 1024) -> Int {
        let batchSize = max(1, batchSize)
        var total = 0
        for shard in shards {
            var next: Int32 = 0
            while true {
                let now = clock.nowMilliseconds()
                let (removed, done) = shard.state.withLock { (state: inout ShardState) -> ([RemovedSession], Bool) in
                    var removed: [RemovedSession] = []
                    while Int(next) < state.entries.count, removed.count < batchSize {
                        if state.entries[next].isLive {
                            removed.append(state.remove(next, reason: .revoked, at: now, now: now))
                        }
                        next += 1
                    }
                    return (removed, Int(next) >= state.entries.count)
                }
                finish(removed)
                total += removed.count
                if done { break }
            }
        }
        return total
    }

    /// shard count, e.g. restored from storage).
    func shardOrder(for id: SessionID) -> [Int] {
        let home = id.shardHint & mask
        return [home] + shards.indices.filter { $0 != home }
    }
}

import Synchronization

extension SessionStore {
    // MARK: Token operations

    /// The session's data, or `nil` when it has none. Does not slide the idle deadline.
    /// - Throws: ``SessionError``: `session_token_malformed`, `session_unknown`, `session_expired`.
    public func data(token: String) throws(SessionError) -> [UInt8]? {
        try withLiveSession(token: token) { state, slot in state.entries[slot].data }
    }

    /// Replaces the session's data (`nil` clears it). Does not slide the idle deadline.
    /// - Throws: ``SessionError``: token errors, `invalid_data`, `data_too_large`; nothing changes then.
    @discardableResult
    public func setData(token: String, data: [UInt8]?) throws(SessionError) -> Session {
        if let data { try Self.checkData(data, maxBytes: configuration.maxDataBytes) }
        return try withLiveSession(token: token) { state, slot in
            state.entries[slot].data = data
            state.journal?.record(.upsert(state.record(slot)))
            return state.snapshot(slot)
        }
    }

    /// The session, without sliding it (the Node library's `getSessionDetails`).
    public func details(token: String) throws(SessionError) -> Session {
        try withLiveSession(token: token) { state, slot in state.snapshot(slot) }
    }

    /// Ends the session with reason `logout` (the Node library's `deleteSession`).
    /// - Returns: the session as it was.
    @discardableResult
    public func logout(token: String) throws(SessionError) -> Session {
        let now = clock.nowMilliseconds()
        let (session, removed) = try withLiveSession(token: token) { state, slot in
            (state.snapshot(slot), state.remove(slot, reason: .logout, at: now, now: now))
        }
        finish(removed)
        return session
    }

    /// Issues a new token for the session (fixation protection); id, data and deadlines stay.
    /// The old token stops working at once.
    public func rotate(token: String) throws(SessionError) -> CreatedSession {
        guard let oldHash = TokenHash(presented: token) else { throw Self.malformedError }
        let (shardIndex, slot) = try locate(oldHash)
        let pool = randomPools[shardIndex % randomPools.count]
        let now = clock.nowMilliseconds()
        while true {
            let (newToken, newHash) = SessionToken.generate(from: pool)
            let newTokenShard = tokenShards[Int(truncatingIfNeeded: newHash.w0) & mask]
            let outcome = newTokenShard.map.withLock { (map: inout CompactIndex) -> LookupOutcome<Session>? in
                guard map.find(newHash.w0) == nil else { return nil }
                let outcome = shards[shardIndex].state.withLock { (state: inout ShardState) -> LookupOutcome<Session> in
                    guard state.matches(slot, oldHash) else { return .unknown }
                    let deadline = state.entries[slot].deadline
                    guard now < deadline.at else {
                        return .expired(state.remove(slot, reason: deadline.reason, at: deadline.at, now: now))
                    }
                    state.entries[slot].hash = newHash
                    state.journal?.record(.upsert(state.record(slot)))
                    return .found(state.snapshot(slot))
                }
                if case .found = outcome {
                    _ = map.insert(newHash.w0, value: TokenIndexShard.pack(shard: shardIndex, slot: slot))
                }
                return outcome
            }
            switch outcome {
            case nil:
                continue
            case .found(let session):
                unindex(hash: oldHash, shard: shardIndex, slot: slot)
                return CreatedSession(session: session, token: newToken)
            case .unknown:
                throw noLiveSessionError(oldHash)
            case .expired(let removed):
                finish(removed)
                throw removed.expiredError
            }
        }
    }
}

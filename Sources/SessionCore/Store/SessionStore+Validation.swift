import Synchronization

extension SessionStore {
    // MARK: Validating

    /// Checks a presented token against the clock (the Node library's `checkSessionStatus`) and,
    /// with `refresh`, slides its idle deadline (`restartSessionTimer`).
    ///
    /// A session found past a deadline is ended on the spot (reason `idle_timeout` or
    /// `absolute_timeout`) and reported `.expired`; afterwards its token is `.unknown`.
    /// - Complexity: O(1): one SHA-256, two hash lookups.
    public func validate(token: String, refresh: Bool = true) -> SessionValidation {
        validate(presented: TokenHash(presented: token), refresh: refresh)
    }

    /// Same as ``validate(token:refresh:)``, with the token as UTF-8 bytes (a request header's,
    /// read without making a `String`).
    ///
    /// ```swift
    /// let outcome = request.withHeader("Session-Token") { bytes in bytes.map { store.validate(tokenUTF8: $0) } }
    /// ```
    public func validate(tokenUTF8 token: UnsafeBufferPointer<UInt8>, refresh: Bool = true) -> SessionValidation {
        validate(presented: TokenHash(presented: token), refresh: refresh)
    }

    func validate(presented hash: TokenHash?, refresh: Bool) -> SessionValidation {
        guard let hash else {
            malformedValidations.add(1, ordering: .relaxed)
            return .malformed
        }
        let tokenShard = tokenShards[Int(truncatingIfNeeded: hash.w0) & mask]
        let now = clock.nowMilliseconds()
        let defaultIdle = defaultIdleTimeout.load(ordering: .relaxed)
        let outcome = withIndexedSlot(hash) { shardIndex, slot in
            shards[shardIndex].state.withLock { (state: inout ShardState) -> LookupOutcome<Session> in
                guard state.matches(slot, hash) else { return .unknown }
                let deadline = state.entries[slot].deadline
                guard now < deadline.at else {
                    state.validationsExpired += 1
                    return .expired(state.remove(slot, reason: deadline.reason, at: deadline.at, now: now))
                }
                if refresh { state.slide(slot, now: now, defaultIdleTimeout: defaultIdle) }
                state.see(user: state.entries[slot].userSlot, now: now)
                state.validationsValid += 1
                return .found(state.snapshot(slot))
            }
        }
        switch outcome {
        case .found(let session)?:
            return .valid(session)
        case .unknown?, nil:
            if let reason = expiredReason(of: hash) {
                tokenShard.expiredValidations.add(1, ordering: .relaxed)
                return .expired(reason)
            }
            tokenShard.unknownValidations.add(1, ordering: .relaxed)
            return .unknown
        case .expired(let removed)?:
            finish(removed)
            guard case .ended(let reason) = removed.event.kind else { return .unknown }
            return .expired(reason)
        }
    }

    /// Slides the idle deadline (the Node library's `restartSessionTimer`); same as
    /// `validate(token:refresh: true)`.
    public func refresh(token: String) -> SessionValidation { validate(token: token, refresh: true) }

    // MARK: Finding a token's session

    /// Runs `attempt` on the slot that the token index gives for `hash`; when that is another
    /// session (`.unknown`), on the one kept aside under the same index key, if any (a restored
    /// session, see ``CompactIndex``). `nil` when nothing is indexed under `hash`.
    @inline(__always)
    func withIndexedSlot<Value: Sendable>(
        _ hash: TokenHash,
        _ attempt: (_ shard: Int, _ slot: Int32) -> LookupOutcome<Value>
    ) -> LookupOutcome<Value>? {
        let tokenShard = tokenShards[Int(truncatingIfNeeded: hash.w0) & mask]
        let (indexed, spilled) = tokenShard.map.withLock { ($0.find(hash.w0), $0.spilledValue(for: hash.w0)) }
        guard let first = indexed ?? spilled else { return nil }
        let (shard, slot) = TokenIndexShard.unpack(first)
        let outcome = attempt(shard, slot)
        guard case .unknown = outcome, let spilled, spilled != first else { return outcome }
        let (otherShard, otherSlot) = TokenIndexShard.unpack(spilled)
        return attempt(otherShard, otherSlot)
    }

    /// The slot of the live session whose token hashes to `hash` (at the time of the call).
    func locate(_ hash: TokenHash) throws(SessionError) -> (shard: Int, slot: Int32) {
        let located = withIndexedSlot(hash) { shard, slot -> LookupOutcome<(shard: Int, slot: Int32)> in
            shards[shard].state.withLock { $0.matches(slot, hash) } ? .found((shard, slot)) : .unknown
        }
        guard case .found(let location)? = located else { throw noLiveSessionError(hash) }
        return location
    }

    /// Runs `body` under the shard lock on the token's live session; ends it first if it expired.
    func withLiveSession<Value: Sendable>(
        token: String,
        _ body: (inout ShardState, Int32) -> Value
    ) throws(SessionError) -> Value {
        guard let hash = TokenHash(presented: token) else { throw Self.malformedError }
        let now = clock.nowMilliseconds()
        let outcome = withIndexedSlot(hash) { shardIndex, slot in
            shards[shardIndex].state.withLock { (state: inout ShardState) -> LookupOutcome<Value> in
                guard state.matches(slot, hash) else { return .unknown }
                let deadline = state.entries[slot].deadline
                guard now < deadline.at else {
                    return .expired(state.remove(slot, reason: deadline.reason, at: deadline.at, now: now))
                }
                return .found(body(&state, slot))
            }
        }
        switch outcome {
        case .found(let value)?: return value
        case .unknown?, nil: throw noLiveSessionError(hash)
        case .expired(let removed)?:
            finish(removed)
            throw removed.expiredError
        }
    }

    /// Shards to search for an id: its home shard first, then the others (ids made under another
}

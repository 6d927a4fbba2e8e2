import Synchronization

/// The session engine: creates, validates, slides, ends and expires sessions; thread-safe and
/// synchronous, so it can be called from any thread (HTTP worker threads included) without hops.
///
/// ```swift
/// let store = SessionStore(configuration: .init(idleTimeout: .seconds(900)))
/// let created = try store.create(username: "ada")
/// sendToClient(created.token.rawValue)                 // the only time the token exists in clear
/// switch store.validate(token: presentedToken) {       // on every API call; slides the idle deadline
/// case .valid(let session): print(session.username)
/// case .unknown, .expired, .malformed: reject()
/// }
/// _ = try store.logout(token: presentedToken)
/// ```
///
/// The table is split into shards by username, each behind its own `Mutex`; a token index (also
/// sharded, keyed by the first 64 bits of SHA-256(token)) finds a token's session. Neither the
/// table nor the index ever holds a token, only its hash. Expired sessions are removed by
/// ``reapExpired(batchSize:)`` (run it periodically, e.g. with ``runExpiryLoop(interval:)``), but
/// every read checks the clock, so a session past a deadline is never reported valid.
public final class SessionStore: Sendable {
    /// Events (`created`, `ended(reason)`) for observers and streams.
    public let events = SessionEventHub()

    let clock: any SessionClock
    let shards: [SessionShard]
    let tokenShards: [TokenIndexShard]
    private let randomPools: [RandomPool]
    let mask: Int
    private let settings: Mutex<Configuration>
    private let defaultIdleTimeout: Atomic<Int64>
    private let malformedValidations = Atomic<Int>(0)
    /// New sessions whose `created` event is being published, each with the `ended` events of it that
    /// came meanwhile. A session is visible to other threads (a concurrent login of the same user may
    /// evict it, an administrator may revoke it) as soon as `create` releases its locks, before its
    /// `created` is published, which happens outside the locks so that the fan-out to subscribers
    /// holds none. An `ended` event of such a session waits here, and no observer ever sees a session
    /// end before it was created.
    private let announcing = Mutex<[SessionID: [SessionEvent]]>([:])
    /// The number of sessions in ``announcing``, so that ending a session does not take its lock when
    /// none is. A session is registered before the lock of its shard is released, and whoever ends it
    /// takes that lock first, so it sees the registration.
    private let announcingCount = Atomic<Int>(0)

    /// Creates an empty store.
    ///
    /// - Parameters:
    ///   - configuration: defaults and limits; invalid values stop the program (use
    ///     ``Configuration/validate()`` first on values that come from users).
    ///   - clock: the clock every deadline is measured with.
    public init(configuration: Configuration = Configuration(), clock: any SessionClock = SystemSessionClock()) {
        do {
            try configuration.validate()
        } catch {
            preconditionFailure("invalid SessionStore configuration: \(error)")
        }
        self.clock = clock
        let epoch = clock.nowMilliseconds() - 86_400_000
        shards = (0..<configuration.shardCount).map { SessionShard(index: $0, wheelEpoch: epoch) }
        tokenShards = (0..<configuration.shardCount).map { _ in TokenIndexShard() }
        randomPools = (0..<min(8, configuration.shardCount)).map { _ in RandomPool() }
        mask = configuration.shardCount - 1
        settings = Mutex(configuration)
        defaultIdleTimeout = Atomic(configuration.idleTimeout.milliseconds)
    }

    /// The current defaults and limits.
    public var configuration: Configuration { settings.withLock { $0 } }

    /// Changes defaults and limits at run time (the shard count cannot change).
    ///
    /// `change` runs under the store's configuration lock: it must only edit its argument, not call
    /// the store.
    ///
    /// A new idle timeout applies to new sessions and, from their next refresh on, to existing
    /// sessions created without their own. A new lifetime applies to new sessions only. A new
    /// per-user cap applies from the next login.
    /// - Throws: ``SessionError`` with `invalid_timeout` or `invalid_argument`; nothing changes then.
    @discardableResult
    public func updateConfiguration(_ change: (inout Configuration) -> Void) throws(SessionError) -> Configuration {
        try settings.withLock { (current: inout Configuration) throws(SessionError) -> Configuration in
            var updated = current
            change(&updated)
            guard updated.shardCount == current.shardCount else {
                throw SessionError(code: .invalidArgument, message: "the shard count cannot change at run time")
            }
            try updated.validate()
            current = updated
            defaultIdleTimeout.store(updated.idleTimeout.milliseconds, ordering: .relaxed)
            return updated
        }
    }

    // MARK: Creating

    /// Opens a session for `username` (the Node library's `loadNewSession`).
    ///
    /// - Parameters:
    ///   - username: 1 to `maxUsernameBytes` UTF-8 bytes, no control characters.
    ///   - data: an optional JSON value (UTF-8 bytes), at most `maxDataBytes`.
    ///   - idleTimeout: this session's idle timeout (≥ 2 s); default: the store's, following changes.
    ///   - maxLifetime: this session's absolute lifetime; default: the store's.
    /// - Returns: the session and its token (the only time the token is available).
    /// - Throws: ``SessionError``: `invalid_username`, `invalid_data`, `data_too_large`,
    ///   `invalid_timeout`, `session_limit_reached`, `capacity_exceeded`. Nothing is stored then.
    /// - Complexity: O(1) amortised (plus the evicted sessions under `evictOldest`).
    public func create(
        username: String,
        data: [UInt8]? = nil,
        idleTimeout: Duration? = nil,
        maxLifetime: Duration? = nil
    ) throws(SessionError) -> CreatedSession {
        let config = configuration
        try Self.checkUsername(username, maxBytes: config.maxUsernameBytes)
        if let data { try Self.checkData(data, maxBytes: config.maxDataBytes) }
        let idle: Int64
        if let idleTimeout {
            try Configuration.checkIdleTimeout(idleTimeout)
            idle = idleTimeout.milliseconds
        } else {
            idle = -config.idleTimeout.milliseconds
        }
        let lifetime = maxLifetime ?? config.maxLifetime
        try Configuration.checkLifetime(lifetime)

        let shardIndex = Self.shardIndex(of: username, mask: mask)
        let shard = shards[shardIndex]
        let pool = randomPools[shardIndex % randomPools.count]
        let now = clock.nowMilliseconds()
        var evicted: [RemovedSession] = []

        while true {
            let (token, hash) = SessionToken.generate(from: pool)
            let tokenShard = tokenShards[Int(truncatingIfNeeded: hash.w0) & mask]
            let outcome = try tokenShard.map.withLock {
                (map: inout CompactIndex) throws(SessionError) -> (Session, Int32)? in
                guard map.find(hash.w0) == nil else { return nil }  // index key taken: draw a new token
                let (session, slot, removed) = try shard.state.withLock {
                    (state: inout ShardState) throws(SessionError) -> (Session, Int32, [RemovedSession]) in
                    let inserted = try Self.insert(
                        into: &state, username: username, hash: hash, pool: pool, now: now,
                        expiresAt: now + lifetime.milliseconds, idleTimeout: idle, data: data, config: config
                    )
                    // Before the session is visible, which it is once this lock is released.
                    announcing.withLock { pending in
                        pending[inserted.0.id] = []
                        announcingCount.store(pending.count, ordering: .releasing)
                    }
                    return inserted
                }
                evicted = removed
                _ = map.insert(hash.w0, value: TokenIndexShard.pack(shard: shardIndex, slot: slot))
                return (session, slot)
            }
            guard let (session, _) = outcome else { continue }
            finish(evicted)
            announce(SessionEvent(kind: .created, id: session.id, username: username, createdAt: session.createdAt, at: session.createdAt))
            return CreatedSession(session: session, token: token)
        }
    }

    private static func insert(
        into state: inout ShardState,
        username: String,
        hash: TokenHash,
        pool: RandomPool,
        now: Int64,
        expiresAt: Int64,
        idleTimeout: Int64,
        data: [UInt8]?,
        config: Configuration
    ) throws(SessionError) -> (Session, Int32, [RemovedSession]) {
        var user = state.userSlot(named: username)
        var removed: [RemovedSession] = []
        if let cap = config.maxSessionsPerUser, Int(state.users[Int(user)].sessionCount) >= cap {
            switch config.sessionLimitPolicy {
            case .reject:
                throw SessionError(
                    code: .sessionLimitReached,
                    message: "user already has the maximum of \(cap) sessions"
                )
            case .evictOldest:
                // The login counts as a sighting first, so that evicting the user's last session
                // leaves the record lingering instead of freeing it under our feet.
                state.see(user: user, now: now)
                while Int(state.users[Int(user)].sessionCount) >= cap {
                    removed.append(state.remove(state.users[Int(user)].head, reason: .evicted, at: now, now: now))
                }
                user = state.userSlot(named: username)
            }
        }
        var id = SessionID.generate(from: pool, shard: state.shardIndex)
        while state.idIndex.find(id.w0) != nil { id = SessionID.generate(from: pool, shard: state.shardIndex) }
        guard
            let slot = state.insert(
                hash: hash, id: id, user: user, createdAt: now, expiresAt: expiresAt, idleTimeout: idleTimeout, data: data
            )
        else {
            state.retire(user: user, now: now)
            throw SessionError(code: .capacityExceeded, message: "the session table is full")
        }
        state.see(user: user, now: now)
        return (state.snapshot(slot), slot, removed)
    }

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

    private func validate(presented hash: TokenHash?, refresh: Bool) -> SessionValidation {
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
                if case .found = outcome { _ = map.insert(newHash.w0, value: TokenIndexShard.pack(shard: shardIndex, slot: slot)) }
                return outcome
            }
            switch outcome {
            case nil:
                continue
            case .found(let session):
                unindex(hash: oldHash, shard: shardIndex, slot: slot)
                return CreatedSession(session: session, token: newToken)
            case .unknown:
                throw Self.unknownError
            case .expired(let removed):
                finish(removed)
                throw Self.expiredError
            }
        }
    }

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
        for tokenShard in tokenShards { stats.validationsUnknown += tokenShard.unknownValidations.load(ordering: .relaxed) }
        stats.validationsMalformed = malformedValidations.load(ordering: .relaxed)
        stats.droppedEvents = events.droppedEventCount
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

    // MARK: Helpers

    enum LookupOutcome<Value: Sendable>: Sendable {
        case found(Value)
        case unknown
        case expired(RemovedSession)
    }

    static let malformedError = SessionError(code: .tokenMalformed, message: "the session token is malformed")
    static let unknownError = SessionError(code: .sessionUnknown, message: "no session has this token")
    static let expiredError = SessionError(code: .sessionExpired, message: "the session has expired")

    /// Runs `attempt` on the slot that the token index gives for `hash`; when that is another
    /// session (`.unknown`), on the one kept aside under the same index key, if any (a restored
    /// session, see ``CompactIndex``). `nil` when nothing is indexed under `hash`.
    @inline(__always)
    private func withIndexedSlot<Value: Sendable>(
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
    private func locate(_ hash: TokenHash) throws(SessionError) -> (shard: Int, slot: Int32) {
        let located = withIndexedSlot(hash) { shard, slot -> LookupOutcome<(shard: Int, slot: Int32)> in
            shards[shard].state.withLock { $0.matches(slot, hash) } ? .found((shard, slot)) : .unknown
        }
        guard case .found(let location)? = located else { throw Self.unknownError }
        return location
    }

    /// Runs `body` under the shard lock on the token's live session; ends it first if it expired.
    private func withLiveSession<Value: Sendable>(
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
        case .unknown?, nil: throw Self.unknownError
        case .expired(let removed)?:
            finish(removed)
            throw Self.expiredError
        }
    }

    /// Shards to search for an id: its home shard first, then the others (ids made under another
    /// shard count, e.g. restored from storage).
    private func shardOrder(for id: SessionID) -> [Int] {
        let home = id.shardHint & mask
        return [home] + shards.indices.filter { $0 != home }
    }

    private func finish(_ removed: RemovedSession) {
        unindex(removed)
        if announcingCount.load(ordering: .acquiring) == 0 {
            events.publish(removed.event)
        } else {
            publishEnded([removed.event])
        }
    }

    func finish(_ removed: [RemovedSession]) {
        for session in removed { unindex(session) }
        publishEnded(removed.map(\.event))
    }

    /// Publishes the `created` event of a new session, then any `ended` event of it that another
    /// thread produced meanwhile (see ``announcing``).
    private func announce(_ created: SessionEvent) {
        events.publish(created)
        let endedMeanwhile = announcing.withLock { pending in
            defer { announcingCount.store(pending.count, ordering: .releasing) }
            return pending.removeValue(forKey: created.id)
        }
        if let endedMeanwhile { events.publish(endedMeanwhile) }
    }

    /// Publishes `ended` events, except those of sessions whose `created` is still being published:
    /// those are left to ``announce(_:)``, which publishes them right after it.
    private func publishEnded(_ ended: [SessionEvent]) {
        guard !ended.isEmpty else { return }
        guard announcingCount.load(ordering: .acquiring) > 0 else {
            events.publish(ended)
            return
        }
        let now = announcing.withLock { pending -> [SessionEvent] in
            guard !pending.isEmpty else { return ended }
            return ended.filter { event in
                guard pending[event.id] != nil else { return true }
                pending[event.id]!.append(event)
                return false
            }
        }
        events.publish(now)
    }

    private func unindex(_ removed: RemovedSession) {
        unindex(hash: removed.hash, shard: removed.shard, slot: removed.slot)
    }

    private func unindex(hash: TokenHash, shard: Int, slot: Int32) {
        let packed = TokenIndexShard.pack(shard: shard, slot: slot)
        tokenShards[Int(truncatingIfNeeded: hash.w0) & mask].map.withLock { map in
            _ = map.remove(hash.w0, ifValue: packed)
        }
    }

    /// FNV-1a over the UTF-8 bytes: stable across processes, so a user's shard does not change on
    /// restart.
    static func shardIndex(of username: String, mask: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in username.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return Int(truncatingIfNeeded: hash ^ (hash >> 32)) & mask
    }

    /// Throws `invalid_username` unless `username` is 1...`maxBytes` UTF-8 bytes without control
    /// characters (C0, DEL, C1).
    public static func checkUsername(_ username: String, maxBytes: Int) throws(SessionError) {
        let count = username.utf8.count
        guard count >= 1, count <= maxBytes else {
            throw SessionError(code: .invalidUsername, message: "username must be 1 to \(maxBytes) bytes of UTF-8")
        }
        guard !containsControlCharacter(username) else {
            throw SessionError(code: .invalidUsername, message: "username must not contain control characters")
        }
    }

    /// Whether `text` holds a C0 or C1 control character or DEL (U+0000–U+001F, U+007F–U+009F).
    ///
    /// A byte scan of the UTF-8 (this runs on every login): C0 and DEL are single bytes, and C1
    /// characters are exactly the pairs `C2 80`–`C2 9F` (in valid UTF-8 a `C2` byte always starts a
    /// two-byte sequence).
    static func containsControlCharacter(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { utf8 in
            var previous: UInt8 = 0
            for byte in utf8 {
                if byte < 0x20 || byte == 0x7F || (previous == 0xC2 && byte <= 0x9F && byte >= 0x80) { return true }
                previous = byte
            }
            return false
        }
    }

    static func checkData(_ data: [UInt8], maxBytes: Int) throws(SessionError) {
        guard data.count <= maxBytes else {
            throw SessionError(code: .dataTooLarge, message: "session data is larger than \(maxBytes) bytes")
        }
        guard JSONValidator.isValid(data) else {
            throw SessionError(code: .invalidData, message: "session data must be a single valid JSON value")
        }
    }
}

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
    let randomPools: [RandomPool]
    let mask: Int
    let settings: Mutex<Configuration>
    let defaultIdleTimeout: Atomic<Int64>
    let malformedValidations = Atomic<Int>(0)
    /// New sessions whose `created` event is being published, each with the `ended` events of it that
    /// came meanwhile. A session is visible to other threads (a concurrent login of the same user may
    /// evict it, an administrator may revoke it) as soon as `create` releases its locks, before its
    /// `created` is published, which happens outside the locks so that the fan-out to subscribers
    /// holds none. An `ended` event of such a session waits here, and no observer ever sees a session
    /// end before it was created.
    let announcing = Mutex<[SessionID: [SessionEvent]]>([:])
    /// The number of sessions in ``announcing``, so that ending a session does not take its lock when
    /// none is. A session is registered before the lock of its shard is released, and whoever ends it
    /// takes that lock first, so it sees the registration.
    let announcingCount = Atomic<Int>(0)

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
        let expiredCapacity =
            (configuration.expiredTokenCapacity + configuration.shardCount - 1) / configuration.shardCount
        let tokenShards = (0..<configuration.shardCount).map { _ in
            TokenIndexShard(
                expiredRetention: configuration.expiredTokenRetention.milliseconds,
                expiredCapacity: expiredCapacity
            )
        }
        self.tokenShards = tokenShards
        shards = (0..<configuration.shardCount).map {
            SessionShard(index: $0, wheelEpoch: epoch, tokenShards: tokenShards)
        }
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
            guard updated.shardCount == current.shardCount,
                updated.expiredTokenRetention == current.expiredTokenRetention,
                updated.expiredTokenCapacity == current.expiredTokenCapacity
            else {
                throw SessionError(
                    code: .invalidArgument,
                    message: "the shard count and expired-token memory cannot change at run time"
                )
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
                        into: &state,
                        username: username,
                        hash: hash,
                        pool: pool,
                        now: now,
                        expiresAt: now + lifetime.milliseconds,
                        idleTimeout: idle,
                        data: data,
                        config: config
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
            announce(
                SessionEvent(
                    kind: .created,
                    id: session.id,
                    username: username,
                    createdAt: session.createdAt,
                    at: session.createdAt
                )
            )
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
                hash: hash,
                id: id,
                user: user,
                createdAt: now,
                expiresAt: expiresAt,
                idleTimeout: idleTimeout,
                data: data
            )
        else {
            state.retire(user: user, now: now)
            throw SessionError(code: .capacityExceeded, message: "the session table is full")
        }
        state.see(user: user, now: now)
        return (state.snapshot(slot), slot, removed)
    }

    // MARK: Helpers

    enum LookupOutcome<Value: Sendable>: Sendable {
        case found(Value)
        case unknown
        case expired(RemovedSession)
    }

    public static let malformedError = SessionError(code: .tokenMalformed, message: "the session token is malformed")
    public static let unknownError = SessionError(code: .sessionUnknown, message: "no session has this token")
    public static let invalidDataError = SessionError(
        code: .invalidData,
        message: "session data must be a single valid JSON value"
    )
    public static func expiredError(_ reason: SessionEndReason) -> SessionError {
        SessionError(code: .sessionExpired, message: "the session has expired (\(reason.rawValue))")
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

    /// Throws `data_too_large` beyond `maxBytes`, then `invalid_data` unless `data` is one JSON value.
    public static func checkData(_ data: [UInt8], maxBytes: Int) throws(SessionError) {
        guard data.count <= maxBytes else {
            throw SessionError(code: .dataTooLarge, message: "session data is larger than \(maxBytes) bytes")
        }
        guard JSONValidator.isValid(data) else {
            throw invalidDataError
        }
    }
}

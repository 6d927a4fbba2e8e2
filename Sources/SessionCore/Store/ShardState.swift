import DequeModule
import HeapModule

/// A session that a shard has just removed: its `ended` event and what the caller still has to do
/// outside the shard lock (drop the token from the token index).
struct RemovedSession: Sendable {
    var event: SessionEvent
    var hash: TokenHash
    var shard: Int
    var slot: Int32

    /// The `session_expired` error of a session ended because it expired.
    var expiredError: SessionError {
        guard case .ended(let reason) = event.kind else { return SessionStore.unknownError }
        return SessionStore.expiredError(reason)
    }
}

/// Everything one shard owns, mutated only under its ``SessionShard`` mutex.
///
/// All sessions of a user live in the user's shard, so per-user operations (cap, eviction, listing,
/// revoke-all) are atomic. Expiry is a lazy timing wheel of 250 ms buckets: a session is filed under
/// the bucket of its deadline when created; sliding only moves `lastSeenAt`, and when the bucket
/// comes due the session is either removed or re-filed under its new deadline.
struct ShardState: ~Copyable {
    static let bucketWidth: Int64 = 250
    static let maximumSlots = (1 << 24) - 1

    let shardIndex: Int
    let wheelEpoch: Int64

    var entries = SlotStorage()
    var freeSlots: [Int32] = []
    var idIndex = CompactIndex()
    var users: [UserRecord] = []
    var freeUsers: [Int32] = []
    var userIndex: [UsernameKey: Int32] = [:]
    var lingering = Deque<(user: Int32, until: Int64)>()
    var bucketHeads: [UInt32: Int32] = [:]
    var dueBuckets = Heap<UInt32>()
    var seen = UsersSeenWindow()
    /// Told about every change, under this shard's lock; `nil` when nothing persists the table.
    var journal: (any SessionJournal)?

    var liveSessions = 0
    var liveUsers = 0
    var created = 0
    var ended = [Int](repeating: 0, count: SessionEndReason.allCases.count)
    var validationsValid = 0
    var validationsExpired = 0

    /// The store's token index shards, whose tombstones of expired tokens ``remove(_:reason:at:now:)``
    /// writes before this shard's lock is released: a validation that no longer finds the session
    /// finds the tombstone.
    let tokenShards: [TokenIndexShard]

    init(shardIndex: Int, wheelEpoch: Int64, tokenShards: [TokenIndexShard]) {
        self.shardIndex = shardIndex
        self.wheelEpoch = wheelEpoch
        self.tokenShards = tokenShards
    }

    // MARK: Users

    mutating func userSlot(named name: String) -> Int32 {
        if let slot = userIndex[UsernameKey(name)] { return slot }
        let slot: Int32
        if let free = freeUsers.popLast() {
            users[Int(free)] = UserRecord(name: name)
            slot = free
        } else {
            users.append(UserRecord(name: name))
            slot = Int32(users.count - 1)
        }
        userIndex[UsernameKey(name)] = slot
        return slot
    }

    mutating func see(user: Int32, now: Int64) {
        let second = now / 1000
        users[Int(user)].lastSeenSecond = seen.see(previous: users[Int(user)].lastSeenSecond, now: second)
    }

    /// Called when a user has no session left: forget them now, or once their last-seen second has
    /// left the 15-minute window.
    mutating func retire(user: Int32, now: Int64) {
        let record = users[Int(user)]
        guard record.isLive, record.sessionCount == 0, !record.isLingering else { return }
        let until =
            record.lastSeenSecond == UsersSeenWindow.never
            ? Int64.min : record.lastSeenSecond + UsersSeenWindow.span
        if until <= now / 1000 {
            deleteUser(user)
        } else {
            users[Int(user)].isLingering = true
            lingering.append((user, until))
        }
    }

    private mutating func deleteUser(_ user: Int32) {
        userIndex.removeValue(forKey: UsernameKey(users[Int(user)].name))
        users[Int(user)] = UserRecord(name: "")
        users[Int(user)].isLive = false
        freeUsers.append(user)
    }

    /// Forgets lingering users whose window has passed; at most `limit` of them. Returns `true` when
    /// more are due.
    mutating func pruneLingering(now: Int64, limit: Int) -> Bool {
        let second = now / 1000
        var done = 0
        while let first = lingering.first, first.until <= second {
            guard done < limit else { return true }
            lingering.removeFirst()
            done += 1
            let user = first.user
            guard users[Int(user)].isLive, users[Int(user)].isLingering else { continue }
            users[Int(user)].isLingering = false
            retire(user: user, now: now)
        }
        return false
    }

    // MARK: Sessions

    /// Stores a new session and links it everywhere; `nil` when the shard is full.
    ///
    /// `lastSeenAt` defaults to `createdAt`; a restored session passes both and `isNew: false`, so
    /// that it is not counted as created again.
    mutating func insert(
        hash: TokenHash,
        id: SessionID,
        user: Int32,
        createdAt: Int64,
        lastSeenAt: Int64? = nil,
        expiresAt: Int64,
        idleTimeout: Int64,
        data: [UInt8]?,
        isNew: Bool = true
    ) -> Int32? {
        precondition(users[Int(user)].isLive, "inserting a session for a freed user record")
        var entry = SessionEntry.free
        entry.hash = hash
        entry.id = id
        entry.username = users[Int(user)].name
        entry.createdAt = createdAt
        entry.lastSeenAt = lastSeenAt ?? createdAt
        entry.expiresAt = expiresAt
        entry.idleTimeout = idleTimeout
        entry.data = data
        entry.userSlot = user
        entry.userPrev = users[Int(user)].tail
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            entries[slot] = entry
        } else {
            guard entries.count < Self.maximumSlots else { return nil }
            slot = entries.append(entry)
        }
        let tail = users[Int(user)].tail
        if tail >= 0 { entries[tail].userNext = slot } else { users[Int(user)].head = slot }
        users[Int(user)].tail = slot
        users[Int(user)].sessionCount += 1
        if users[Int(user)].sessionCount == 1 { liveUsers += 1 }
        // A new id was drawn unique in the index; a restored one keeps its value even when another
        // id shares its index key.
        _ = isNew ? idIndex.insert(id.w0, value: UInt32(slot)) : idIndex.insertSharingKey(id.w0, value: UInt32(slot))
        linkWheel(slot, bucket: bucket(for: entries[slot].deadline.at))
        liveSessions += 1
        if isNew {
            created += 1
            journal?.record(.upsert(record(slot)))
        }
        return slot
    }

    /// Removes a live session; `at` is the time the session ended (its deadline for timeouts).
    mutating func remove(_ slot: Int32, reason: SessionEndReason, at: Int64, now: Int64) -> RemovedSession {
        unlinkWheel(slot)
        let entry = entries[slot]
        let user = entry.userSlot
        if entry.userPrev >= 0 {
            entries[entry.userPrev].userNext = entry.userNext
        } else {
            users[Int(user)].head = entry.userNext
        }
        if entry.userNext >= 0 {
            entries[entry.userNext].userPrev = entry.userPrev
        } else {
            users[Int(user)].tail = entry.userPrev
        }
        idIndex.remove(entry.id.w0, ifValue: UInt32(slot))
        let event = SessionEvent(
            kind: .ended(reason),
            id: entry.id,
            username: entry.username,
            createdAt: SessionTimestamp(millisecondsSinceEpoch: entry.createdAt),
            at: SessionTimestamp(millisecondsSinceEpoch: max(at, entry.createdAt))
        )
        users[Int(user)].sessionCount -= 1
        if users[Int(user)].sessionCount == 0 {
            liveUsers -= 1
            retire(user: user, now: now)
        }
        entries[slot] = .free
        freeSlots.append(slot)
        liveSessions -= 1
        ended[reason.counterIndex] += 1
        journal?.record(.remove(id: entry.id, createdAt: entry.createdAt, reason: reason))
        if reason == .idleTimeout || reason == .absoluteTimeout {
            tokenShards[Int(truncatingIfNeeded: entry.hash.w0) & (tokenShards.count - 1)]
                .rememberExpired(entry.hash, reason: reason, endedAt: event.at.millisecondsSinceEpoch, now: now)
        }
        return RemovedSession(event: event, hash: entry.hash, shard: shardIndex, slot: slot)
    }

    /// `true` when `slot` holds the live session whose token hashes to `hash`.
    func matches(_ slot: Int32, _ hash: TokenHash) -> Bool {
        Int(slot) < entries.count && entries[slot].isLive && entries[slot].hash == hash
    }

    /// The slot of the live session with this id, if this shard has it.
    func slot(of id: SessionID) -> Int32? {
        if let value = idIndex.find(id.w0), holds(id, at: value) { return Int32(value) }
        if let value = idIndex.spilledValue(for: id.w0), holds(id, at: value) { return Int32(value) }
        return nil
    }

    /// Whether a restored session with this id can be found by id once inserted: not when another id
    /// with the same first 64 bits is already kept aside in the id index (the side table is keyed by
    /// those 64 bits, so it cannot hold both).
    func canIndexRestored(_ id: SessionID) -> Bool {
        idIndex.spilledValue(for: id.w0) == nil
    }

    private func holds(_ id: SessionID, at value: UInt32) -> Bool {
        entries[Int32(value)].isLive && entries[Int32(value)].id == id
    }

    /// Moves the idle deadline to `now + idle timeout`; a session following the default takes the
    /// current default.
    ///
    /// With a journal, the slide is recorded only when `lastSeenAt` crosses a multiple of the
    /// journal's slide step or the idle timeout changed, so the journal's copy never lags by a step
    /// or more.
    mutating func slide(_ slot: Int32, now: Int64, defaultIdleTimeout: Int64) {
        let previousSeen = entries[slot].lastSeenAt
        let previousIdle = entries[slot].idleTimeout
        // `now` was read before the lock: a concurrent slide may already have gone further.
        entries[slot].lastSeenAt = max(previousSeen, now)
        if previousIdle < 0 { entries[slot].idleTimeout = -defaultIdleTimeout }
        if let journal {
            let entry = entries[slot]
            let step = max(1, journal.slideStep(idleTimeout: entry.idleTimeoutMilliseconds))
            if entry.idleTimeout != previousIdle || entry.lastSeenAt / step != previousSeen / step {
                journal.record(
                    .touch(
                        id: entry.id,
                        createdAt: entry.createdAt,
                        lastSeenAt: entry.lastSeenAt,
                        idleTimeout: entry.idleTimeout
                    )
                )
            }
        }
        // Lazy wheel: only an earlier deadline (a shorter default) needs re-filing now.
        let due = bucket(for: entries[slot].deadline.at)
        if due < entries[slot].wheelBucket {
            unlinkWheel(slot)
            linkWheel(slot, bucket: due)
        }
    }

    /// The durable form of a live session.
    func record(_ slot: Int32) -> SessionRecord {
        let entry = entries[slot]
        return SessionRecord(
            id: entry.id,
            tokenHash: entry.hash,
            username: entry.username,
            createdAt: entry.createdAt,
            lastSeenAt: entry.lastSeenAt,
            expiresAt: entry.expiresAt,
            idleTimeout: entry.idleTimeout,
            data: entry.data
        )
    }

    func snapshot(_ slot: Int32) -> Session {
        let entry = entries[slot]
        return Session(
            id: entry.id,
            username: entry.username,
            createdAt: SessionTimestamp(millisecondsSinceEpoch: entry.createdAt),
            lastSeenAt: SessionTimestamp(millisecondsSinceEpoch: entry.lastSeenAt),
            idleExpiresAt: SessionTimestamp(millisecondsSinceEpoch: entry.idleExpiresAt),
            expiresAt: SessionTimestamp(millisecondsSinceEpoch: entry.expiresAt),
            idleTimeout: .milliseconds(entry.idleTimeoutMilliseconds),
            data: entry.data
        )
    }
}

extension SessionEndReason {
    var counterIndex: Int {
        switch self {
        case .logout: 0
        case .revoked: 1
        case .evicted: 2
        case .idleTimeout: 3
        case .absoluteTimeout: 4
        }
    }
}

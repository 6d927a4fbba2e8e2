import Synchronization

extension SessionStore {
    /// What ``restore(_:)`` did with the records it was given.
    public struct RestoreReport: Sendable, Hashable {
        /// Sessions now live in the store.
        public var restored = 0
        /// Sessions whose deadline had passed, by reason; they were ended (with `ended` events and
        /// counters), not restored.
        public var expired: [SessionEndReason: Int] = [:]
        /// The expired sessions, so that storage can delete them.
        public var expiredRecords: [SessionRecord] = []
        /// Records skipped because their id or token is already in the table, their username is
        /// invalid, their times are out of range (``SessionRecord/hasPlausibleTimes``), their data
        /// is not JSON, or the table is full.
        public var skipped = 0

        public init() {}

        /// Adds another report's counts to this one.
        public mutating func merge(_ other: RestoreReport) {
            restored += other.restored
            for (reason, count) in other.expired { expired[reason, default: 0] += count }
            expiredRecords += other.expiredRecords
            skipped += other.skipped
        }
    }

    /// Sends every future change of the table to `journal` (see ``SessionJournal``); replaces a
    /// journal attached before. Changes made before this call are not replayed to it.
    public func attachJournal(_ journal: any SessionJournal) {
        for shard in shards { shard.state.withLock { $0.journal = journal } }
    }

    /// Stops sending changes to the attached journal.
    public func detachJournal() {
        for shard in shards { shard.state.withLock { $0.journal = nil } }
    }

    /// Puts sessions read back from storage into the table, with their ids, token hashes, data and
    /// deadlines. Sessions whose deadline has passed are ended instead, with reason `idle_timeout`
    /// or `absolute_timeout` (an `ended` event and the expiry counter, once); restored sessions
    /// are not counted as created again and are not sent to the journal.
    ///
    /// Call it before serving, in batches of a few thousand records.
    /// - Complexity: O(records).
    public func restore(_ records: [SessionRecord]) -> RestoreReport {
        var report = RestoreReport()
        var events: [SessionEvent] = []
        let now = clock.nowMilliseconds()
        let maxUsernameBytes = configuration.maxUsernameBytes
        for record in records {
            // A damaged row must not stop the restart: times that would overflow a deadline, data
            // that the data route could not serve as JSON, or a username no route accepts are skipped.
            guard record.hasPlausibleTimes, record.data.map({ JSONValidator.isValid($0) }) ?? true,
                (try? Self.checkUsername(record.username, maxBytes: maxUsernameBytes)) != nil
            else {
                report.skipped += 1
                continue
            }
            let deadline = record.deadline
            let shardIndex = Self.shardIndex(of: record.username, mask: mask)
            let shard = shards[shardIndex]
            if deadline.at <= now {
                shard.state.withLock { $0.ended[deadline.reason.counterIndex] += 1 }
                rememberExpired(record.tokenHash, reason: deadline.reason, endedAt: deadline.at)
                report.expired[deadline.reason, default: 0] += 1
                report.expiredRecords.append(record)
                events.append(
                    SessionEvent(
                        kind: .ended(deadline.reason),
                        id: record.id,
                        username: record.username,
                        createdAt: SessionTimestamp(millisecondsSinceEpoch: record.createdAt),
                        at: SessionTimestamp(millisecondsSinceEpoch: max(deadline.at, record.createdAt))
                    )
                )
                continue
            }
            let hash = record.tokenHash
            let inserted = tokenShards[Int(truncatingIfNeeded: hash.w0) & mask].map.withLock { map -> Bool in
                // Another session may share this token's index key (the first 32 bits of its hash):
                // both are kept (CompactIndex). Only a token or an id stored twice is skipped.
                guard map.spilledValue(for: hash.w0) == nil, !isIndexed(hash, candidate: map.find(hash.w0)) else {
                    return false
                }
                let slot = shard.state.withLock { (state: inout ShardState) -> Int32? in
                    guard state.slot(of: record.id) == nil, state.canIndexRestored(record.id) else { return nil }
                    let user = state.userSlot(named: record.username)
                    guard
                        let slot = state.insert(
                            hash: hash,
                            id: record.id,
                            user: user,
                            createdAt: record.createdAt,
                            lastSeenAt: record.lastSeenAt,
                            expiresAt: record.expiresAt,
                            idleTimeout: record.idleTimeout,
                            data: record.data,
                            isNew: false
                        )
                    else {
                        state.retire(user: user, now: now)
                        return nil
                    }
                    return slot
                }
                guard let slot else { return false }
                return map.insertSharingKey(hash.w0, value: TokenIndexShard.pack(shard: shardIndex, slot: slot))
            }
            if inserted { report.restored += 1 } else { report.skipped += 1 }
        }
        self.events.publish(events)
        return report
    }

    /// Whether `candidate` (a token index value) is the live session with exactly this token hash.
    private func isIndexed(_ hash: TokenHash, candidate: UInt32?) -> Bool {
        guard let candidate else { return false }
        let (shard, slot) = TokenIndexShard.unpack(candidate)
        return shards[shard].state.withLock { $0.matches(slot, hash) }
    }
}

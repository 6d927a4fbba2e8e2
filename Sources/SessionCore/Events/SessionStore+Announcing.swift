import Synchronization

extension SessionStore {
    func finish(_ removed: RemovedSession) {
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
    func announce(_ created: SessionEvent) {
        events.publish(created)
        let endedMeanwhile = announcing.withLock { pending in
            defer { announcingCount.store(pending.count, ordering: .releasing) }
            return pending.removeValue(forKey: created.id)
        }
        if let endedMeanwhile { events.publish(endedMeanwhile) }
    }

    /// Publishes `ended` events, except those of sessions whose `created` is still being published:
    /// those are left to ``announce(_:)``, which publishes them right after it.
    func publishEnded(_ ended: [SessionEvent]) {
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

    func unindex(_ removed: RemovedSession) {
        unindex(hash: removed.hash, shard: removed.shard, slot: removed.slot)
    }

    func unindex(hash: TokenHash, shard: Int, slot: Int32) {
        let packed = TokenIndexShard.pack(shard: shard, slot: slot)
        tokenShards[Int(truncatingIfNeeded: hash.w0) & mask].map.withLock { map in
            _ = map.remove(hash.w0, ifValue: packed)
        }
    }
}

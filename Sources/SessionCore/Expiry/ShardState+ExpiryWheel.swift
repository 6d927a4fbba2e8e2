import HeapModule
import Synchronization

extension ShardState {
    // MARK: Expiry wheel

    /// Buckets in the expiry heap (each at most once).
    var scheduledBucketCount: Int { dueBuckets.count }

    func bucket(for deadline: Int64) -> UInt32 {
        UInt32(clamping: max(1, (deadline - wheelEpoch) / Self.bucketWidth + 1))
    }

    /// Files `slot` under `bucket`. A bucket enters the heap once, when first used; an emptied bucket
    /// keeps its key (head -1) until ``reap(now:limit:into:)`` pops it, so re-using it does not push
    /// it again.
    mutating func linkWheel(_ slot: Int32, bucket: UInt32) {
        let head: Int32
        if let existing = bucketHeads[bucket] {
            head = existing
        } else {
            head = -1
            dueBuckets.insert(bucket)
        }
        entries[slot].wheelBucket = bucket
        entries[slot].wheelPrev = -1
        entries[slot].wheelNext = head
        if head >= 0 { entries[head].wheelPrev = slot }
        bucketHeads[bucket] = slot
    }

    mutating func unlinkWheel(_ slot: Int32) {
        let entry = entries[slot]
        guard entry.wheelBucket != 0 else { return }
        if entry.wheelPrev >= 0 {
            entries[entry.wheelPrev].wheelNext = entry.wheelNext
        } else {
            bucketHeads[entry.wheelBucket] = entry.wheelNext  // -1 when emptied; the key stays until reaped
        }
        if entry.wheelNext >= 0 { entries[entry.wheelNext].wheelPrev = entry.wheelPrev }
        entries[slot].wheelBucket = 0
        entries[slot].wheelPrev = -1
        entries[slot].wheelNext = -1
    }

    /// Ends up to `limit` sessions whose bucket is due; re-files those whose deadline moved.
    /// Returns `true` when due work remains (call again after releasing the lock).
    mutating func reap(now: Int64, limit: Int, into removed: inout [RemovedSession]) -> Bool {
        let current = UInt32(clamping: max(0, (now - wheelEpoch) / Self.bucketWidth))
        var processed = 0
        while let bucket = dueBuckets.min, bucket <= current {
            guard processed < limit else { return true }
            guard let slot = bucketHeads[bucket], slot >= 0 else {
                _ = dueBuckets.removeMin()
                bucketHeads.removeValue(forKey: bucket)
                continue
            }
            processed += 1
            unlinkWheel(slot)
            let deadline = entries[slot].deadline
            if deadline.at <= now {
                removed.append(remove(slot, reason: deadline.reason, at: deadline.at, now: now))
            } else {
                linkWheel(slot, bucket: self.bucket(for: deadline.at))
            }
        }
        return pruneLingering(now: now, limit: limit)
    }
}

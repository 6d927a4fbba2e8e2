import HeapModule
import Synchronization

extension ShardState {
    // MARK: Invariants

    /// Consistency problems found in this shard (empty when all is well). Debug and test aid: O(n).
    func invariantViolations() -> [String] {
        var problems: [String] = []
        var liveCount = 0
        var perUser: [Int32: Int] = [:]
        for index in 0..<entries.count {
            let slot = Int32(index)
            let entry = entries[slot]
            guard entry.isLive else { continue }
            liveCount += 1
            perUser[entry.userSlot, default: 0] += 1
            if entry.id.shardHint & 0xFF != shardIndex & 0xFF { problems.append("slot \(slot): id shard hint") }
            if !idIndex.contains(entry.id.w0, value: UInt32(slot)) { problems.append("slot \(slot): id index") }
            if entry.wheelBucket == 0 { problems.append("slot \(slot): not scheduled") }
            if entry.wheelBucket > bucket(for: entry.deadline.at) { problems.append("slot \(slot): scheduled late") }
            if !users[Int(entry.userSlot)].isLive { problems.append("slot \(slot): dead user") }
            if !entry.username.utf8.elementsEqual(users[Int(entry.userSlot)].name.utf8) {
                problems.append("slot \(slot): username")
            }
        }
        if liveCount != liveSessions { problems.append("liveSessions \(liveSessions) != recount \(liveCount)") }
        if idIndex.count != liveCount { problems.append("id index size \(idIndex.count) != \(liveCount)") }
        var wheelCount = 0
        for (bucket, head) in bucketHeads {
            if !dueBuckets.unordered.contains(bucket) { problems.append("bucket \(bucket) missing from heap") }
            var slot = head
            var previous: Int32 = -1
            while slot >= 0 {
                if entries[slot].wheelBucket != bucket { problems.append("bucket \(bucket): foreign slot \(slot)") }
                if entries[slot].wheelPrev != previous { problems.append("bucket \(bucket): broken back link") }
                wheelCount += 1
                previous = slot
                slot = entries[slot].wheelNext
                if wheelCount > liveCount {
                    problems.append("bucket \(bucket): cycle")
                    break
                }
            }
        }
        if Set(dueBuckets.unordered).count != dueBuckets.count { problems.append("a bucket is in the heap twice") }
        if wheelCount != liveCount { problems.append("wheel holds \(wheelCount), table \(liveCount)") }
        var liveUserCount = 0
        for (index, user) in users.enumerated() where user.isLive {
            if userIndex[UsernameKey(user.name)] != Int32(index) { problems.append("user \(index): index") }
            if user.sessionCount > 0 { liveUserCount += 1 }
            if Int(user.sessionCount) != perUser[Int32(index), default: 0] {
                problems.append("user \(index): count \(user.sessionCount) != \(perUser[Int32(index), default: 0])")
            }
            var listed = 0
            var slot = user.head
            while slot >= 0, listed <= liveCount {
                listed += 1
                slot = entries[slot].userNext
            }
            if listed != Int(user.sessionCount) { problems.append("user \(index): list length \(listed)") }
            if user.sessionCount == 0, !user.isLingering { problems.append("user \(index): empty but kept") }
        }
        if liveUserCount != liveUsers { problems.append("liveUsers \(liveUsers) != recount \(liveUserCount)") }
        if userIndex.count != users.filter(\.isLive).count { problems.append("user index size") }
        return problems
    }
}

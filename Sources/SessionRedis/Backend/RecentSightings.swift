import Synchronization

/// The users whose sighting (`sessiond_users_seen`) this instance recorded in Redis within the last
/// second, so that a validation of such a user needs no write: the function that records sightings
/// writes one at most once a second per user, and a validation that has nothing else to write can
/// then be a plain read. Keyed by a 64-bit hash of the username in 16 shards; entries older than a
/// second are forgotten when a shard grows past 4,096.
final class RecentSightings: Sendable {
    private final class Shard: Sendable {
        let entries = Mutex<[UInt64: Int64]>([:])
    }

    private let shards = (0..<16).map { _ in Shard() }

    /// Whether `username`'s sighting was recorded less than a second before `now` (milliseconds).
    func isRecent(_ username: String, now: Int64) -> Bool {
        let key = Self.hash(username)
        return shards[Int(key & 15)].entries.withLock { ($0[key]).map { now - $0 < 1000 } ?? false }
    }

    /// Notes that `username`'s sighting was recorded at `now`.
    func record(_ username: String, now: Int64) {
        let key = Self.hash(username)
        shards[Int(key & 15)].entries.withLock { entries in
            entries[key] = now
            if entries.count > 4096 { entries = entries.filter { now - $0.value < 1000 } }
        }
    }

    private static func hash(_ username: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in username.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash
    }
}

/// The names of the keys a Redis store uses.
///
/// Every key of a partition starts with `sd:{p}:` (`p` the partition number), so all of one
/// partition's keys share one hash tag and any script touches a single slot of a Redis Cluster. A
/// username only ever follows that prefix and a fixed suffix (`sd:{p}:u:<username>`): whatever bytes
/// it holds (`{`, `}`, `:`), it cannot reach another partition's keys or change the hash tag, which is
/// the first `{…}` of the key.
///
/// | key | type | holds |
/// |---|---|---|
/// | `sd:meta` | hash | `id` (the store's id), `partitions`, `created` |
/// | `sd:config` | hash | the configuration and its `ver`, copied to every partition's `cfg` |
/// | `sd:{p}:cfg` | hash | `idle`, `life`, `cap`, `policy`, `maxdata`, `ver` |
/// | `sd:{p}:meta` | hash | `seq`: the partition's creation sequence |
/// | `sd:{p}:k:<token hash>` | hash | a session: `id`, `u`, `c`, `l`, `i`, `x`, `d` |
/// | `sd:{p}:i:<id>` | string | the token hash of a session id |
/// | `sd:{p}:u:<username>` | sorted set | a user's session ids by creation sequence |
/// | `sd:{p}:users` | sorted set | usernames with a live session (byte order) |
/// | `sd:{p}:all` | sorted set | session ids by creation sequence |
/// | `sd:{p}:dl` | sorted set | session ids by deadline (ms) |
/// | `sd:{p}:seen` | sorted set | usernames by last sighting (ms), 15 minutes kept |
/// | `sd:{p}:ev` | stream | `created` and `ended` events |
/// | `sd:{p}:x:<token hash>` | string, with TTL | the end reason of a session ended by timeout |
enum RedisKeys {
    static let meta = "sd:meta"
    static let configuration = "sd:config"

    /// `sd:{p}:`
    static func prefix(_ partition: Int) -> String { "sd:{\(partition)}:" }

    /// `sd:{p}:cfg`: the first key of every function call of the partition.
    static func partitionConfiguration(_ partition: Int) -> String { prefix(partition) + "cfg" }

    /// `sd:{p}:ev`
    static func events(_ partition: Int) -> String { prefix(partition) + "ev" }

    /// `sd:{p}:dl`
    static func deadlines(_ partition: Int) -> String { prefix(partition) + "dl" }

    /// The partition of a user: FNV-1a of the username's UTF-8 bytes, modulo the partition count.
    static func partition(of username: String, count: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in username.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return Int(hash % UInt64(count))
    }
}

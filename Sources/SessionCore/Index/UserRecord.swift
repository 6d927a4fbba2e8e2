/// A user known to a shard: the head and tail of their session list, and when they were last seen.
///
/// A user whose last session ended lingers until their last-seen second leaves the 15-minute window,
/// so that "users seen" stays exact when they come back.
struct UserRecord {
    var name: String
    var head: Int32 = -1
    var tail: Int32 = -1
    var sessionCount: Int32 = 0
    var lastSeenSecond: Int64 = UsersSeenWindow.never
    var isLingering = false
    var isLive = true

    init(name: String) { self.name = name }
}

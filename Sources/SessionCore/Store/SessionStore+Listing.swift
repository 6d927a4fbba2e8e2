import Synchronization

extension SessionStore {
    /// The largest page a listing returns.
    public static let maximumPageSize = 10_000

    /// Live sessions (never tokens), all of them or those of one user, one page at a time.
    ///
    /// Without `username`, pages walk the table shard by shard: a session that exists for the
    /// whole walk is returned exactly once; one created or ended meanwhile may or may not be.
    /// With `username`, sessions come oldest first.
    /// - Parameters:
    ///   - username: only this user's sessions.
    ///   - limit: page size, 1...``maximumPageSize``.
    ///   - cursor: `nextCursor` of the previous page, or `nil` for the first page.
    /// - Throws: ``SessionError`` `invalid_cursor` or `invalid_argument`.
    /// - Complexity: O(limit) plus free slots skipped.
    public func sessions(
        username: String? = nil,
        limit: Int = 100,
        cursor: String? = nil
    ) throws(SessionError)
        -> Page<Session>
    {
        try Self.checkLimit(limit)
        let now = clock.nowMilliseconds()
        if let username {
            let offset = try cursor.map { (text) throws(SessionError) -> Int in try Self.decodeOffsetCursor(text) } ?? 0
            return shards[Self.shardIndex(of: username, mask: mask)].state.withLock { state in
                guard let user = state.userIndex[UsernameKey(username)] else { return Page(items: [], nextCursor: nil) }
                var items: [Session] = []
                var slot = state.users[Int(user)].head
                var position = 0
                while slot >= 0, items.count < limit {
                    if position >= offset, now < state.entries[slot].deadline.at { items.append(state.snapshot(slot)) }
                    position += 1
                    slot = state.entries[slot].userNext
                }
                return Page(items: items, nextCursor: slot >= 0 ? "o\(position)" : nil)
            }
        }
        return try walkShards(cursor: cursor, kind: "s", limit: limit) { state, slot, items in
            guard Int(slot) < state.entries.count else { return false }
            if state.entries[slot].isLive, now < state.entries[slot].deadline.at { items.append(state.snapshot(slot)) }
            return true
        }
    }

    /// Users with at least one live session and how many each has: distinct, one page at a time
    /// (the Node library's `getLoggedUsers`, without its duplicates and quadratic cost).
    /// - Complexity: O(limit) plus free user slots skipped.
    public func users(limit: Int = 100, cursor: String? = nil) throws(SessionError) -> Page<LoggedInUser> {
        try Self.checkLimit(limit)
        return try walkShards(cursor: cursor, kind: "u", limit: limit) { state, slot, items in
            guard Int(slot) < state.users.count else { return false }
            let user = state.users[Int(slot)]
            if user.isLive, user.sessionCount > 0 {
                items.append(LoggedInUser(username: user.name, sessionCount: Int(user.sessionCount)))
            }
            return true
        }
    }

    /// Walks slots shard by shard from `cursor`, one shard lock hold per shard visited, until
    /// `limit` items are collected. `visit` appends what the slot holds and returns `false` past the
    /// shard's last slot.
    private func walkShards<Item: Sendable>(
        cursor: String?,
        kind: Character,
        limit: Int,
        visit: (borrowing ShardState, Int32, inout [Item]) -> Bool
    ) throws(SessionError) -> Page<Item> {
        var (shardIndex, slot) =
            try cursor.map { (text) throws(SessionError) -> (Int, Int32) in
                try decodeSlotCursor(text, kind: kind)
            } ?? (0, 0)
        var items: [Item] = []
        while shardIndex < shards.count, items.count < limit {
            let finished = shards[shardIndex].state.withLock { state -> Bool in
                while items.count < limit {
                    guard visit(state, slot, &items) else { return true }
                    slot += 1
                }
                return false
            }
            if finished {
                shardIndex += 1
                slot = 0
            }
        }
        return Page(items: items, nextCursor: shardIndex < shards.count ? "\(kind)\(shardIndex).\(slot)" : nil)
    }

    private static func checkLimit(_ limit: Int) throws(SessionError) {
        guard limit >= 1, limit <= maximumPageSize else {
            throw SessionError(code: .invalidArgument, message: "limit must be between 1 and \(maximumPageSize)")
        }
    }

    private static var cursorError: SessionError {
        SessionError(code: .invalidCursor, message: "the cursor was not produced by this listing")
    }

    private func decodeSlotCursor(_ text: String, kind: Character) throws(SessionError) -> (Int, Int32) {
        guard text.first == kind else { throw Self.cursorError }
        let parts = text.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let shard = Int(parts[0]), let slot = Int32(parts[1]),
            shard >= 0, shard < shards.count, slot >= 0
        else { throw Self.cursorError }
        return (shard, slot)
    }

    private static func decodeOffsetCursor(_ text: String) throws(SessionError) -> Int {
        guard text.first == "o", let offset = Int(text.dropFirst()), offset >= 0 else { throw cursorError }
        return offset
    }
}

import SessionCore

/// Reads the replies of the functions of ``RedisFunctionLibrary`` into the store's types.
enum RedisReplyDecoder {
    /// A session row `{id, username, createdAt, lastSeenAt, idleTimeout, expiresAt, data}`.
    static func session(_ value: RedisValue) -> Session? {
        guard let fields = value.array, fields.count >= 6,
            let idBytes = fields[0].bytes, let id = idBytes.withUnsafeBytes({ SessionID(bytes: $0) }),
            let username = fields[1].bytes,
            let createdAt = fields[2].integer, let lastSeenAt = fields[3].integer,
            let idle = fields[4].integer, let expiresAt = fields[5].integer
        else { return nil }
        let data = fields.count > 6 ? fields[6].bytes : nil
        return Session(
            id: id,
            username: String(decoding: username, as: UTF8.self),
            createdAt: SessionTimestamp(millisecondsSinceEpoch: createdAt),
            lastSeenAt: SessionTimestamp(millisecondsSinceEpoch: lastSeenAt),
            idleExpiresAt: SessionTimestamp(millisecondsSinceEpoch: lastSeenAt + abs(idle)),
            expiresAt: SessionTimestamp(millisecondsSinceEpoch: expiresAt),
            idleTimeout: .milliseconds(abs(idle)),
            data: data
        )
    }

    /// An ended-session row `{id, username, createdAt, endedAt, reason}`, as its `ended` event.
    static func ended(_ value: RedisValue) -> SessionEvent? {
        guard let fields = value.array, fields.count == 5,
            let idBytes = fields[0].bytes, let id = idBytes.withUnsafeBytes({ SessionID(bytes: $0) }),
            let username = fields[1].bytes,
            let createdAt = fields[2].integer, let endedAt = fields[3].integer,
            let reason = fields[4].string.flatMap(SessionEndReason.init(rawValue:))
        else { return nil }
        return SessionEvent(
            kind: .ended(reason),
            id: id,
            username: String(decoding: username, as: UTF8.self),
            createdAt: SessionTimestamp(millisecondsSinceEpoch: createdAt),
            at: SessionTimestamp(millisecondsSinceEpoch: endedAt)
        )
    }

    /// A list of ended-session rows.
    static func endedList(_ value: RedisValue) -> [SessionEvent] {
        (value.array ?? []).compactMap(ended)
    }

    /// The status word of a function reply (`OK`, `E`, `U`, `X`, `V`, `N`) and its other elements.
    static func status(_ value: RedisValue) -> (status: String, rest: ArraySlice<RedisValue>)? {
        guard let elements = value.array, let first = elements.first?.string else { return nil }
        return (first, elements.dropFirst())
    }
}

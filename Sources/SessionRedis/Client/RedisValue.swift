/// One reply of Redis (RESP2), as plain Swift values: what ``RedisConnection`` reads and
/// ``RedisClient`` hands back. Bulk strings are bytes: keys, tokens' hashes and ids are binary.
public enum RedisValue: Sendable, Hashable {
    /// A status reply (`+OK`).
    case status(String)
    /// An error reply (`-ERR …`, `-NOSCRIPT …`): Redis refused the command; the connection is fine.
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    /// A nil bulk or nil array.
    case null
    case array([RedisValue])

    /// The integer of an integer reply, or of a bulk string holding a decimal integer.
    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .bulk(let bytes): Int64(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    /// The bytes of a bulk string or status.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    /// The UTF-8 text of a bulk string or status (invalid sequences repaired).
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    /// The elements of an array reply.
    public var array: [RedisValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The message of an error reply.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}

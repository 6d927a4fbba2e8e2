import MicroHTTP
import SessionCore

/// The API's JSON answers: sessions, data, counts, configuration, statuses.
enum SessionJSON {
    /// The headers of every JSON answer; one shared array, so that answering allocates no header list.
    private static let headers: [(name: String, value: String)] = [
        ("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store"),
    ]

    /// A JSON answer built by `build`, gzipped when the client accepts it and it is large enough.
    static func response(status: Int = 200, capacity: Int = 320, _ build: (inout JSONWriter) -> Void) -> HTTPResponse {
        var writer = JSONWriter(capacity: capacity)
        build(&writer)
        return HTTPResponse(status: status, headers: headers, body: writer.bytes, compressIfAccepted: true)
    }

    /// `204 No Content`.
    static let noContent = HTTPResponse(status: 204, headers: [("Cache-Control", "no-store")])

    /// An object with one member, `{"<key>": …}`, whose value `write` writes.
    private static func object(_ key: StaticString, _ write: (inout JSONWriter) -> Void) -> HTTPResponse {
        response { writer in
            writer.beginObject()
            writer.key(key)
            write(&writer)
            writer.endObject()
        }
    }

    /// `{"status": text}`.
    static func status(_ text: String) -> HTTPResponse {
        object("status") { $0.string(text) }
    }

    /// `{"data": …}` (`null` when there is none).
    @Sendable
    static func dataResponse(_ data: [UInt8]?) -> HTTPResponse {
        object("data") { writer in if let data { writer.raw(data) } else { writer.null() } }
    }

    /// `{"deleted": count}`.
    @Sendable
    static func deletedResponse(_ count: Int) -> HTTPResponse {
        object("deleted") { $0.integer(count) }
    }

    @Sendable
    static func configurationResponse(_ configuration: SessionStore.Configuration) -> HTTPResponse {
        response { writer in
            writer.beginObject()
            writer.key("idleTimeout")
            writer.seconds(configuration.idleTimeout)
            writer.key("maxLifetime")
            writer.seconds(configuration.maxLifetime)
            writer.key("maxSessionsPerUser")
            if let cap = configuration.maxSessionsPerUser { writer.integer(cap) } else { writer.null() }
            writer.key("sessionLimitPolicy")
            writer.string(configuration.sessionLimitPolicy.rawValue)
            writer.key("maxDataBytes")
            writer.integer(configuration.maxDataBytes)
            writer.endObject()
        }
    }

    /// `"nextCursor": …` of a page (`null` on the last page).
    static func writeNextCursor(_ cursor: String?, into writer: inout JSONWriter) {
        writer.key("nextCursor")
        if let cursor { writer.string(cursor) } else { writer.null() }
    }

    /// A session as JSON; with `token` only for creation and rotation.
    static func write(_ session: Session, token: SessionToken? = nil, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id")
        writer.id(session.id)
        if let token {
            writer.key("token")
            writer.string(token.rawValue)
        }
        writer.key("username")
        writer.string(session.username)
        writer.key("createdAt")
        writer.timestamp(session.createdAt)
        writer.key("lastSeenAt")
        writer.timestamp(session.lastSeenAt)
        writer.key("idleExpiresAt")
        writer.timestamp(session.idleExpiresAt)
        writer.key("expiresAt")
        writer.timestamp(session.expiresAt)
        writer.key("idleTimeout")
        writer.seconds(session.idleTimeout)
        if let data = session.data {
            writer.key("data")
            writer.raw(data)
        }
        writer.endObject()
    }
}

import MicroHTTP
import SessionCore

/// The administrative routes: listing users and sessions, revoking by id or by user, deleting every
/// session, reading and changing the configuration.
extension SessionAPI {
    func listSessions(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        let limit = try Self.limit(request)
        // Not repaired: "%FF" must not list the sessions of a user named "\u{FFFD}".
        let username = try request.withQueryParameter("username") { (value) throws(APIError) -> String? in
            guard let value else { return nil }
            guard let text = String(validating: value, as: UTF8.self) else {
                throw APIError(SessionError(code: .invalidUsername, message: "the username is not valid UTF-8"))
            }
            return text
        }
        let reply = backend.sessions(username: username, limit: limit, cursor: request.queryParameter("cursor"))
        return .from(reply) { page in
            SessionJSON.response(capacity: 64 + page.items.count * 256) { writer in
                writer.beginObject()
                writer.key("sessions")
                writer.beginArray()
                for session in page.items { SessionJSON.write(session, into: &writer) }
                writer.endArray()
                SessionJSON.writeNextCursor(page.nextCursor, into: &writer)
                writer.endObject()
            }
        }
    }

    func deleteAllSessions(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        guard request.queryParameter("confirm") == "true" else { throw APIError.confirmationRequired }
        return .from(backend.deleteAll(), SessionJSON.deletedResponse)
    }

    func sessionByID(_ text: String) throws(APIError) -> APIAnswer {
        guard let id = SessionID(text) else { throw APIError.sessionNotFound }
        return .from(backend.session(id: id)) { session throws(APIError) in
            guard let session else { throw APIError.sessionNotFound }
            return SessionJSON.response { writer in SessionJSON.write(session, into: &writer) }
        }
    }

    func revoke(_ text: String) throws(APIError) -> APIAnswer {
        guard let id = SessionID(text) else { throw APIError.sessionNotFound }
        return .from(backend.revoke(id: id)) { session throws(APIError) in
            guard session != nil else { throw APIError.sessionNotFound }
            return SessionJSON.noContent
        }
    }

    func listUsers(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        let limit = try Self.limit(request)
        return .from(backend.users(limit: limit, cursor: request.queryParameter("cursor"))) { page in
            SessionJSON.response(capacity: 64 + page.items.count * 64) { writer in
                writer.beginObject()
                writer.key("users")
                writer.beginArray()
                for user in page.items {
                    writer.beginObject()
                    writer.key("username")
                    writer.string(user.username)
                    writer.key("sessionCount")
                    writer.integer(user.sessionCount)
                    writer.endObject()
                }
                writer.endArray()
                SessionJSON.writeNextCursor(page.nextCursor, into: &writer)
                writer.endObject()
            }
        }
    }

    func revokeAll(_ username: String) -> APIAnswer {
        .from(backend.revokeAll(username: username), SessionJSON.deletedResponse)
    }

    func readConfiguration() -> APIAnswer {
        .from(backend.configuration(), SessionJSON.configurationResponse)
    }

    func patchConfiguration(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        let body = try Self.jsonBody(request)
        try body.requireOnly(["idleTimeout", "maxLifetime", "maxSessionsPerUser", "sessionLimitPolicy", "maxDataBytes"])
        var change = SessionConfigurationChange()
        change.idleTimeout = try Self.duration(body.members["idleTimeout"], field: "idleTimeout")
        change.maxLifetime = try Self.duration(body.members["maxLifetime"], field: "maxLifetime")
        if let member = body.members["maxSessionsPerUser"] {
            switch member.value {
            case .null: change.maxSessionsPerUser = .some(nil)
            case .number(let value):
                guard value.rounded() == value, value >= 1, value <= Double(Int32.max) else {
                    throw APIError.invalidArgument("maxSessionsPerUser must be an integer ≥ 1, or null")
                }
                change.maxSessionsPerUser = .some(Int(value))
            default: throw APIError.invalidRequest("\"maxSessionsPerUser\" must be an integer or null")
            }
        }
        if let member = body.members["sessionLimitPolicy"] {
            guard case .string(let text) = member.value else {
                throw APIError.invalidRequest("\"sessionLimitPolicy\" must be a string")
            }
            guard let policy = SessionStore.SessionLimitPolicy(rawValue: text) else {
                throw APIError.invalidArgument("sessionLimitPolicy must be reject or evict_oldest")
            }
            change.sessionLimitPolicy = policy
        }
        if let member = body.members["maxDataBytes"] {
            guard case .number(let value) = member.value else {
                throw APIError.invalidRequest("\"maxDataBytes\" must be an integer")
            }
            guard value.rounded() == value, value >= 2, value <= 16_777_216 else {
                throw APIError.invalidArgument("maxDataBytes must be an integer between 2 and 16777216")
            }
            change.maxDataBytes = Int(value)
        }
        return .from(backend.updateConfiguration(change), SessionJSON.configurationResponse)
    }
}

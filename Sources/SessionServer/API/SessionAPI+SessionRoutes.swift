import MicroHTTP
import SessionCore

/// The routes an application backend calls for its users' sessions: login, validation, data,
/// rotation, logout. The session token comes from the `Session-Token` header.
extension SessionAPI {
    func createSession(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        let body = try Self.jsonBody(request)
        try body.requireOnly(["username", "data", "idleTimeout", "maxLifetime"])
        guard let username = body.members["username"] else { throw APIError.invalidRequest("\"username\" is required") }
        guard case .string(let name) = username.value else {
            throw APIError.invalidRequest("\"username\" must be a string")
        }
        let session = NewSession(
            username: name,
            data: Self.data(body.members["data"]),
            idleTimeout: try Self.duration(body.members["idleTimeout"], field: "idleTimeout"),
            maxLifetime: try Self.duration(body.members["maxLifetime"], field: "maxLifetime")
        )
        return .from(backend.create(session)) { created in
            var response = SessionJSON.response(status: 201) { writer in
                SessionJSON.write(created.session, token: created.token, into: &writer)
            }
            response.headers.append(("Location", "/v1/sessions/\(created.session.id)"))
            return response
        }
    }

    func validateSession(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        let refresh: Bool
        switch request.queryParameter("refresh") {
        case nil, "true": refresh = true
        case "false": refresh = false
        default: throw APIError.invalidArgument("refresh must be true or false")
        }
        // The token's bytes go to the backend straight from the header: no `String` on this hot path.
        let reply = try request.withHeader("Session-Token") { (token) throws(APIError) in
            guard let token, !token.isEmpty else { throw APIError.sessionTokenMissing }
            return backend.validate(token: token, refresh: refresh)
        }
        return .from(reply, Self.validationResponse)
    }

    @Sendable
    private static func validationResponse(_ validation: SessionValidation) throws(APIError) -> HTTPResponse {
        switch validation {
        case .valid(let session):
            return SessionJSON.response { writer in SessionJSON.write(session, into: &writer) }
        case .unknown:
            throw APIError(SessionError(code: .sessionUnknown, message: "no session has this token"))
        case .expired(let reason):
            throw APIError(SessionError(code: .sessionExpired, message: "the session has expired (\(reason.rawValue))"))
        case .malformed:
            throw APIError(SessionError(code: .tokenMalformed, message: "the session token is malformed"))
        }
    }

    func logout(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        .from(backend.logout(token: try Self.sessionToken(request))) { _ in SessionJSON.noContent }
    }

    func readData(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        .from(backend.data(token: try Self.sessionToken(request)), SessionJSON.dataResponse)
    }

    func writeData(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        let token = try Self.sessionToken(request)
        let body = try Self.jsonBody(request)
        try body.requireOnly(["data"])
        guard let member = body.members["data"] else {
            throw APIError.invalidRequest("\"data\" is required (null clears it)")
        }
        return .from(backend.setData(token: token, data: Self.data(member))) { session in
            SessionJSON.dataResponse(session.data)
        }
    }

    func rotate(_ request: HTTPRequest) throws(APIError) -> APIAnswer {
        .from(backend.rotate(token: try Self.sessionToken(request))) { rotated in
            SessionJSON.response { writer in SessionJSON.write(rotated.session, token: rotated.token, into: &writer) }
        }
    }
}

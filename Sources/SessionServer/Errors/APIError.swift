import MicroHTTP
import SessionCore

/// An error answer of the HTTP API: a status, a stable code and a message, rendered as
/// `{"error": {"code": "...", "message": "..."}}`.
///
/// Every status the API can answer with an error is decided here, in one place: ``init(_:)-(SessionError)``
/// maps each ``SessionError/Code`` of a backend to its status, ``init(_:)-(HTTPServerError)`` the errors
/// the HTTP server answers by itself, and the static members the API's own.
public struct APIError: Error, Hashable, Sendable {
    public var status: Int
    public var code: String
    public var message: String
    public var headers: [String: String] = [:]

    public init(status: Int, code: String, message: String, headers: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    /// The API error for a backend error.
    public init(_ error: SessionError) {
        let status: Int
        var headers: [String: String] = [:]
        switch error.code {
        case .invalidUsername, .invalidTimeout, .invalidData, .invalidCursor, .invalidArgument: status = 400
        case .tokenMalformed, .sessionUnknown, .sessionExpired: status = 401
        case .sessionLimitReached: status = 409
        case .dataTooLarge: status = 413
        case .capacityExceeded: status = 503
        case .storageUnavailable:
            status = 503
            headers["Retry-After"] = "1"
        default: status = 500
        }
        self.init(status: status, code: error.code.rawValue, message: error.message, headers: headers)
    }

    /// The API error for an answer the HTTP server gives by itself (body too large, shutting down,
    /// an invalid response), so that it has the same shape and headers as every other error.
    public init(_ error: HTTPServerError) {
        self.init(status: error.status, code: error.code.rawValue, message: error.message)
    }

    static func invalidJSON(_ message: String = "the body is not valid JSON") -> APIError {
        APIError(status: 400, code: "invalid_json", message: message)
    }
    static func invalidRequest(_ message: String) -> APIError {
        APIError(status: 400, code: "invalid_request", message: message)
    }
    static func unknownField(_ name: String) -> APIError {
        APIError(status: 400, code: "unknown_field", message: "unknown field \"\(name.prefix(64))\"")
    }
    static func invalidArgument(_ message: String) -> APIError {
        APIError(status: 400, code: "invalid_argument", message: message)
    }
    static func invalidTimeout(_ message: String) -> APIError {
        APIError(status: 400, code: "invalid_timeout", message: message)
    }
    static let confirmationRequired = APIError(
        status: 400,
        code: "confirmation_required",
        message: "deleting every session requires ?confirm=true"
    )
    static let apiTokenMissing = APIError(
        status: 401,
        code: "api_token_missing",
        message: "this route requires Authorization: Bearer <api token>",
        headers: ["WWW-Authenticate": "Bearer realm=\"sessiond\""]
    )
    static let apiTokenInvalid = APIError(status: 403, code: "api_token_invalid", message: "the API token is not valid")
    static let apiTokenInsufficientScope = APIError(
        status: 403,
        code: "api_token_insufficient_scope",
        message: "this route requires an admin token (--admin-token-file); the API token does not grant it"
    )
    static let sessionTokenMissing = APIError(
        status: 401,
        code: "session_token_missing",
        message: "this route requires the Session-Token header"
    )
    static let sessionNotFound = APIError(status: 404, code: "session_not_found", message: "no session has this id")
    static let notFound = APIError(status: 404, code: "not_found", message: "no such route")
    static func methodNotAllowed(_ allowed: [String]) -> APIError {
        APIError(
            status: 405,
            code: "method_not_allowed",
            message: "allowed methods: \(allowed.joined(separator: ", "))",
            headers: ["Allow": allowed.joined(separator: ", ")]
        )
    }
    static let unsupportedMediaType = APIError(
        status: 415,
        code: "unsupported_media_type",
        message: "the body must be application/json"
    )
    static let tooManySubscribers = APIError(
        status: 429,
        code: "too_many_subscribers",
        message: "the event stream has too many subscribers"
    )
    static let notReady = APIError(
        status: 503,
        code: "not_ready",
        message: "sessiond is not ready yet (storage is being replayed)",
        headers: ["Retry-After": "1"]
    )
    /// The error as an HTTP response.
    var response: HTTPResponse {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("error")
        writer.beginObject()
        writer.key("code")
        writer.string(code)
        writer.key("message")
        writer.string(message)
        writer.endObject()
        writer.endObject()
        var response = HTTPResponse.json(writer.bytes, status: status)
        response.headers.append(("Cache-Control", "no-store"))
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { response.headers.append((name, value)) }
        return response
    }
}

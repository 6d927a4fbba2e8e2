import MicroHTTP
import SessionCore

/// Reading what a request carries: the session token, a JSON body, durations, page limits.
extension SessionAPI {
    static func sessionToken(_ request: HTTPRequest) throws(APIError) -> String {
        guard let token = request.header("Session-Token"), !token.isEmpty else { throw APIError.sessionTokenMissing }
        return token
    }

    static func jsonBody(_ request: HTTPRequest) throws(APIError) -> JSONBody {
        guard !request.body.isEmpty else { throw APIError.invalidRequest("a JSON body is required") }
        guard let contentType = request.header("Content-Type"), isJSONMediaType(contentType) else {
            throw APIError.unsupportedMediaType
        }
        return try JSONBody(request.body, maximumDepth: maximumBodyDepth)
    }

    /// A `data` member as stored bytes; `nil` when absent or `null`.
    static func data(_ member: JSONBody.Member?) -> [UInt8]? {
        guard let member, member.value != .null else { return nil }
        return Array(member.raw)
    }

    /// A duration member in seconds, 2 s to ``SessionStore/Configuration/maximumDuration``.
    static func duration(_ member: JSONBody.Member?, field: String) throws(APIError) -> Duration? {
        guard let member else { return nil }
        guard case .number(let seconds) = member.value else {
            throw APIError.invalidTimeout("\(field) must be a number of seconds")
        }
        let maximum = Double(SessionStore.Configuration.maximumDuration.components.seconds)
        guard seconds.isFinite, seconds >= 2, seconds <= maximum else {
            throw APIError.invalidTimeout("\(field) must be between 2 and \(Int(maximum)) seconds")
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The `limit` query parameter: 1 to ``maximumLimit``, default 100.
    static func limit(_ request: HTTPRequest) throws(APIError) -> Int {
        guard let text = request.queryParameter("limit") else { return 100 }
        guard let limit = Int(text), limit >= 1, limit <= maximumLimit else {
            throw APIError.invalidArgument("limit must be an integer between 1 and \(maximumLimit)")
        }
        return limit
    }

    /// Whether a `Content-Type` value is `application/json`, in any case, with optional spaces and
    /// parameters (`application/json; charset=utf-8`). Byte-level: this runs on every write request.
    static func isJSONMediaType(_ value: String) -> Bool {
        var utf8 = value.utf8[...]
        while let first = utf8.first, first == 0x20 || first == 0x09 { utf8 = utf8.dropFirst() }
        let expected = "application/json".utf8
        guard utf8.count >= expected.count else { return false }
        for (byte, wanted) in zip(utf8.prefix(expected.count), expected) where !Self.equalsIgnoringCase(byte, wanted) {
            return false
        }
        let rest = utf8.dropFirst(expected.count)
        guard let next = rest.first else { return true }
        return next == UInt8(ascii: ";") || next == 0x20 || next == 0x09
    }

    /// Whether `byte` is `lowercase` (an ASCII byte), ignoring the case of letters only: `| 0x20`
    /// folds letters, but would also take 0x0F for '/' or 0x00 for a space.
    static func equalsIgnoringCase(_ byte: UInt8, _ lowercase: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(lowercase) ? byte | 0x20 == lowercase : byte == lowercase
    }
}

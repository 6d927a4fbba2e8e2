/// The routes of the HTTP API, matched from a request path.
///
/// ``template`` is the path with parameters as placeholders (`/v1/sessions/{id}`): the only form
/// of a path that may appear in metrics or logs (a raw path can carry a username).
public enum Route: Sendable, Hashable {
    case sessions
    case session
    case sessionData
    case sessionRotate
    case sessionByID(String)
    case users
    case userSessions(username: String)
    case config
    case events
    case metrics
    case healthz
    case readyz

    /// Matches a percent-decoded path; `nil` for an unknown path.
    ///
    /// Byte by byte: `String` comparison works on grapheme clusters and canonical equivalence, so a
    /// username starting with a combining mark (`/v1/users/\u{301}x/sessions`: the `/` and the mark
    /// are one cluster) would not match its route, and could not be revoked.
    public init?(path: String) {
        let bytes = path.utf8
        if let exact = Self.fixedPaths.first(where: { fixed in fixed.path.withUTF8Buffer { bytes.elementsEqual($0) } }) {
            self = exact.route
        } else if let id = Self.parameter(of: path, after: "/v1/sessions/", before: "") {
            guard !id.utf8.contains(UInt8(ascii: "/")) else { return nil }
            self = .sessionByID(String(id))
        } else if let username = Self.parameter(of: path, after: "/v1/users/", before: "/sessions") {
            self = .userSessions(username: String(username))
        } else {
            return nil
        }
    }

    /// The routes without parameters, the most frequent first.
    private static let fixedPaths: [(path: StaticString, route: Route)] = [
        ("/v1/session", .session), ("/v1/sessions", .sessions), ("/v1/session/data", .sessionData),
        ("/v1/session/rotate", .sessionRotate), ("/v1/users", .users), ("/v1/config", .config),
        ("/v1/events", .events), ("/metrics", .metrics), ("/healthz", .healthz), ("/readyz", .readyz),
    ]

    /// The non-empty part of `path` between the ASCII `prefix` and `suffix`, compared as bytes; `nil`
    /// when `path` does not have both.
    private static func parameter(of path: String, after prefix: StaticString, before suffix: StaticString) -> Substring? {
        let bytes = path.utf8
        let (prefixLength, suffixLength) = (prefix.utf8CodeUnitCount, suffix.utf8CodeUnitCount)
        guard bytes.count > prefixLength + suffixLength,
            prefix.withUTF8Buffer({ bytes.starts(with: $0) }),
            suffix.withUTF8Buffer({ bytes.reversed().starts(with: $0.reversed()) })
        else { return nil }
        // The prefix and suffix are ASCII, so both cuts fall on scalar boundaries.
        let start = bytes.index(bytes.startIndex, offsetBy: prefixLength)
        let end = bytes.index(bytes.endIndex, offsetBy: -suffixLength)
        return path[start..<end]
    }

    /// The path template, for metric labels and logs.
    public var template: String {
        switch self {
        case .sessions: "/v1/sessions"
        case .session: "/v1/session"
        case .sessionData: "/v1/session/data"
        case .sessionRotate: "/v1/session/rotate"
        case .sessionByID: "/v1/sessions/{id}"
        case .users: "/v1/users"
        case .userSessions: "/v1/users/{username}/sessions"
        case .config: "/v1/config"
        case .events: "/v1/events"
        case .metrics: "/metrics"
        case .healthz: "/healthz"
        case .readyz: "/readyz"
        }
    }

    /// One route of each kind, for metrics created up front.
    public static let all: [Route] = [
        .sessions, .session, .sessionData, .sessionRotate, .sessionByID(""), .users, .userSessions(username: ""),
        .config, .events, .metrics, .healthz, .readyz,
    ]

    /// The position of this route's kind in ``all`` (parameters ignored), for tables indexed by route.
    public var ordinal: Int {
        switch self {
        case .sessions: 0
        case .session: 1
        case .sessionData: 2
        case .sessionRotate: 3
        case .sessionByID: 4
        case .users: 5
        case .userSessions: 6
        case .config: 7
        case .events: 8
        case .metrics: 9
        case .healthz: 10
        case .readyz: 11
        }
    }

    /// Every template.
    public static var allTemplates: [String] { all.map(\.template) }

    /// Every template with the methods it answers and their success status (for ``SessionMetrics``,
    /// which creates those request counters at zero).
    public static var catalogue: [(template: String, responses: [(method: String, status: Int)])] {
        all.map { route in (route.template, route.allowedMethods.map { ($0, route.successStatus(for: $0)) }) }
    }

    /// The status of a successful answer to `method` on this route.
    public func successStatus(for method: String) -> Int {
        switch (self, method) {
        case (.sessions, "POST"): 201
        case (.session, "DELETE"), (.sessionByID, "DELETE"): 204
        default: 200
        }
    }

    /// The methods the route answers (the `Allow` header of a 405); `HEAD` wherever `GET` is.
    public var allowedMethods: [String] {
        switch self {
        case .sessions: ["GET", "HEAD", "POST", "DELETE"]
        case .session: ["GET", "HEAD", "DELETE"]
        case .sessionData: ["GET", "HEAD", "PUT"]
        case .sessionRotate: ["POST"]
        case .sessionByID: ["GET", "HEAD", "DELETE"]
        case .users: ["GET", "HEAD"]
        case .userSessions: ["DELETE"]
        case .config: ["GET", "HEAD", "PATCH"]
        case .events: ["GET", "HEAD"]
        case .metrics, .healthz, .readyz: ["GET", "HEAD"]
        }
    }

    /// Whether `method` is one of ``allowedMethods``, without building the list (this runs on every
    /// request).
    public func allows(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD":
            switch self {
            case .sessionRotate, .userSessions: false
            default: true
            }
        case "POST":
            switch self {
            case .sessions, .sessionRotate: true
            default: false
            }
        case "DELETE":
            switch self {
            case .sessions, .session, .sessionByID, .userSessions: true
            default: false
            }
        case "PUT": self == .sessionData
        case "PATCH": self == .config
        default: false
        }
    }

    /// Whether the route is under `/v1` and so needs the API token.
    public var requiresAPIToken: Bool {
        switch self {
        case .metrics, .healthz, .readyz: false
        default: true
        }
    }
}

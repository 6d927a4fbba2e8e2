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
    public init?(path: String) {
        switch path {
        case "/v1/sessions": self = .sessions
        case "/v1/session": self = .session
        case "/v1/session/data": self = .sessionData
        case "/v1/session/rotate": self = .sessionRotate
        case "/v1/users": self = .users
        case "/v1/config": self = .config
        case "/v1/events": self = .events
        case "/metrics": self = .metrics
        case "/healthz": self = .healthz
        case "/readyz": self = .readyz
        default:
            if path.hasPrefix("/v1/sessions/") {
                let id = path.dropFirst("/v1/sessions/".count)
                guard !id.isEmpty, !id.contains("/") else { return nil }
                self = .sessionByID(String(id))
            } else if path.hasPrefix("/v1/users/"), path.hasSuffix("/sessions") {
                let username = path.dropFirst("/v1/users/".count).dropLast("/sessions".count)
                guard !username.isEmpty else { return nil }
                self = .userSessions(username: String(username))
            } else {
                return nil
            }
        }
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

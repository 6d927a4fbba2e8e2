/// The bearer tokens sessiond accepts and what each grants: API tokens for what an application
/// backend needs, admin tokens for everything (``Route/Scope``). Several of each may be valid at once,
/// so that a token can be replaced without downtime (add the new one, move the callers, remove the
/// old one).
///
/// ```swift
/// let credentials = APICredentials(
///     application: [try APIToken(applicationSecret)],
///     administration: [try APIToken(adminSecret)]
/// )
/// let api = SessionAPI(backend: backend, configuration: .init(credentials: credentials))
/// ```
public struct APICredentials: Sendable, CustomStringConvertible {
    /// Tokens granting ``Route/Scope/application``.
    public let applicationTokens: [APIToken]
    /// Tokens granting every scope, ``Route/Scope/administration`` included.
    public let administrationTokens: [APIToken]

    /// No token: every route is open (sessiond then listens on loopback only).
    public static let none = APICredentials()

    public init(application: [APIToken] = [], administration: [APIToken] = []) {
        self.applicationTokens = application
        self.administrationTokens = administration
    }

    /// Whether a request for an operation of `scope` must present a token: not for open operations,
    /// not for application ones without API tokens (loopback only), not for administrative ones
    /// without any token.
    func isRequired(for scope: Route.Scope) -> Bool {
        switch scope {
        case .open: false
        case .application: !applicationTokens.isEmpty
        case .administration: !applicationTokens.isEmpty || !administrationTokens.isEmpty
        }
    }

    /// The broadest scope `candidate` grants, or `nil` for an unknown token. Every token is compared
    /// (in constant time each), so the time taken does not tell which one matched.
    func scope(of candidate: UnsafeBufferPointer<UInt8>) -> Route.Scope? {
        var administration = false
        var application = false
        for token in administrationTokens { administration = token.matches(candidate) || administration }
        for token in applicationTokens { application = token.matches(candidate) || application }
        if administration { return .administration }
        // Without admin tokens, the API token keeps granting every route.
        if application { return administrationTokens.isEmpty ? .administration : .application }
        return nil
    }

    public var description: String {
        "APICredentials(\(applicationTokens.count) API, \(administrationTokens.count) admin, redacted)"
    }
}

/// Where sessions live, as the HTTP API sees them: every operation of the API, each answered at once
/// or later (``SessionReply``), so that a backend that waits for a disk or a network round trip does
/// not hold the caller's thread.
///
/// Implementations: `LocalSessionBackend` (module SessionStorage), a ``SessionStore`` in memory with
/// an optional SQLite journal. The errors are ``SessionError``s; their codes are the API's error codes.
///
/// ```swift
/// let backend: any SessionBackend = LocalSessionBackend(store: store, storage: storage)
/// backend.create(NewSession(username: "ada")).whenComplete { result in
///     if case .success(let created) = result { send(created.token.rawValue) }
/// }
/// ```
public protocol SessionBackend: AnyObject, Sendable {
    /// The `created` and `ended` events of what this backend did, for observers (metrics, logs): with
    /// a shared store, only this instance's own operations, so that the fleet counts each event once.
    var events: SessionEventHub { get }

    /// The ordered events that `/v1/events` streams, with the ids subscribers resume from: this
    /// backend's own (``LocalEventFeed``) or, for a shared store, every instance's.
    var eventFeed: any SessionEventFeed { get }

    /// Opens a session.
    /// - Throws (in the reply): `invalid_username`, `invalid_data`, `data_too_large`, `invalid_timeout`,
    ///   `session_limit_reached`, `capacity_exceeded`, `storage_unavailable`.
    func create(_ request: NewSession) -> SessionReply<CreatedSession>

    /// Checks a presented token and, with `refresh`, slides its idle deadline. `token` is the token's
    /// UTF-8 bytes, valid only during the call. A bad token is a ``SessionValidation`` value, never an
    /// error; the reply fails only when the backend cannot answer (`storage_unavailable`).
    func validate(token: UnsafeBufferPointer<UInt8>, refresh: Bool) -> SessionReply<SessionValidation>

    /// The session's data (`nil` when it has none), without sliding it.
    /// - Throws (in the reply): `session_token_malformed`, `session_unknown`, `session_expired`.
    func data(token: String) -> SessionReply<[UInt8]?>

    /// Replaces the session's data (`nil` clears it), without sliding it.
    /// - Throws (in the reply): the token errors, `invalid_data`, `data_too_large`, `storage_unavailable`.
    func setData(token: String, data: [UInt8]?) -> SessionReply<Session>

    /// Issues a new token for the session; the old one stops working.
    /// - Throws (in the reply): the token errors, `storage_unavailable`.
    func rotate(token: String) -> SessionReply<CreatedSession>

    /// Ends the session with reason `logout`; the reply holds it as it was.
    /// - Throws (in the reply): the token errors, `storage_unavailable`.
    func logout(token: String) -> SessionReply<Session>

    /// The live session with this id, or `nil`.
    func session(id: SessionID) -> SessionReply<Session?>

    /// Ends the session with this id, reason `revoked`; `nil` when there is none.
    /// - Throws (in the reply): `storage_unavailable`.
    func revoke(id: SessionID) -> SessionReply<Session?>

    /// Ends every session of `username`, reason `revoked`; the reply holds how many ended.
    /// - Throws (in the reply): `storage_unavailable`.
    func revokeAll(username: String) -> SessionReply<Int>

    /// Live sessions, all or one user's, one page at a time.
    /// - Throws (in the reply): `invalid_username`, `invalid_cursor`, `invalid_argument`.
    func sessions(username: String?, limit: Int, cursor: String?) -> SessionReply<Page<Session>>

    /// Users with at least one live session and their session counts, one page at a time.
    /// - Throws (in the reply): `invalid_cursor`, `invalid_argument`.
    func users(limit: Int, cursor: String?) -> SessionReply<Page<LoggedInUser>>

    /// Ends every session, reason `revoked`; the reply holds how many ended.
    /// - Throws (in the reply): `storage_unavailable`.
    func deleteAll() -> SessionReply<Int>

    /// The defaults and limits that apply to new sessions and refreshes.
    func configuration() -> SessionReply<SessionStore.Configuration>

    /// Changes some defaults and limits; the reply holds the result. Nothing changes when it fails.
    /// - Throws (in the reply): `invalid_timeout`, `invalid_argument`.
    func updateConfiguration(_ change: SessionConfigurationChange) -> SessionReply<SessionStore.Configuration>

    /// Exact counts for the metrics.
    func statistics() -> SessionReply<SessionStatistics>

    /// Whether the backend can answer at all (`false` while a shared store is unreachable): `/readyz`
    /// answers 503 then, so that a load balancer sends requests to instances that can serve them.
    var isAvailable: Bool { get }
}

extension SessionBackend {
    /// An in-process backend can always answer (a storage that cannot write still serves reads).
    public var isAvailable: Bool { true }
}

/// What ``SessionBackend/create(_:)`` opens.
public struct NewSession: Sendable, Hashable {
    /// The user: 1 to `maxUsernameBytes` UTF-8 bytes, no control characters.
    public var username: String
    /// A JSON value (UTF-8 bytes), at most `maxDataBytes`.
    public var data: [UInt8]?
    /// This session's idle timeout (≥ 2 s); `nil`: the configured default, following its changes.
    public var idleTimeout: Duration?
    /// This session's absolute lifetime; `nil`: the configured default.
    public var maxLifetime: Duration?

    public init(username: String, data: [UInt8]? = nil, idleTimeout: Duration? = nil, maxLifetime: Duration? = nil) {
        self.username = username
        self.data = data
        self.idleTimeout = idleTimeout
        self.maxLifetime = maxLifetime
    }
}

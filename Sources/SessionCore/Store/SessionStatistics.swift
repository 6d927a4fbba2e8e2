/// Exact counts read from the table: what the metrics gauges and counters export.
public struct SessionStatistics: Sendable, Hashable {
    /// The id of the session store the gauges below describe: the `store` label of the store gauges,
    /// so that instances sharing one store are counted once (`max by (store)`).
    public var storeID = ""
    /// Whether the store gauges (sessions, users, users seen) could be read; `false` while a shared
    /// store is unreachable: the gauges are then left out rather than stale.
    public var storeGaugesAvailable = true
    /// Live sessions (not yet ended; a session past its deadline counts until it is reaped,
    /// at most a few hundred milliseconds).
    public var activeSessions = 0
    /// Distinct users with at least one live session.
    public var realtimeUsers = 0
    /// Distinct users that logged in, validated or refreshed within the last 1, 5 and 15 minutes.
    public var usersSeenLastMinute = 0
    public var usersSeenLast5Minutes = 0
    public var usersSeenLast15Minutes = 0
    /// Sessions created since the store started.
    public var created = 0
    /// Sessions ended since the store started, by reason.
    public var ended: [SessionEndReason: Int] = [:]
    /// Token validations since the store started, by result.
    public var validationsValid = 0
    public var validationsUnknown = 0
    public var validationsExpired = 0
    public var validationsMalformed = 0
    /// Events dropped by bounded consumers.
    public var droppedEvents = 0
    /// Event-stream subscribers disconnected because they could not keep up.
    public var slowSubscribersDisconnected = 0

    /// All counts zero (a store with no sessions and no history).
    public init() {}
}

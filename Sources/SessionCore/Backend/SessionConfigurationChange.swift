/// Some defaults and limits to change (``SessionBackend/updateConfiguration(_:)``); `nil` keeps a
/// value as it is.
///
/// ```swift
/// var change = SessionConfigurationChange()
/// change.idleTimeout = .seconds(900)
/// change.maxSessionsPerUser = .some(nil)   // no cap
/// ```
public struct SessionConfigurationChange: Sendable, Hashable {
    /// The default idle timeout.
    public var idleTimeout: Duration?
    /// The default absolute lifetime.
    public var maxLifetime: Duration?
    /// The per-user cap: `.some(nil)` removes it.
    public var maxSessionsPerUser: Int??
    /// What happens at the per-user cap.
    public var sessionLimitPolicy: SessionStore.SessionLimitPolicy?
    /// The largest session data, in bytes.
    public var maxDataBytes: Int?

    public init() {}

    /// Applies the change to `configuration`.
    public func apply(to configuration: inout SessionStore.Configuration) {
        if let idleTimeout { configuration.idleTimeout = idleTimeout }
        if let maxLifetime { configuration.maxLifetime = maxLifetime }
        if let maxSessionsPerUser { configuration.maxSessionsPerUser = maxSessionsPerUser }
        if let sessionLimitPolicy { configuration.sessionLimitPolicy = sessionLimitPolicy }
        if let maxDataBytes { configuration.maxDataBytes = maxDataBytes }
    }
}

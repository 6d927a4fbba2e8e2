/// What an ``HTTPServer`` did with its connections, for metrics: how many are open, and how many it
/// refused or cut off, by reason. Counts only grow, except ``open``.
///
/// ```swift
/// let statistics = server.connectionStatistics
/// openGauge.set(to: Double(statistics.open))
/// ```
public struct HTTPConnectionStatistics: Sendable, Hashable {
    /// Connections open now.
    public var open = 0
    /// The most connections the server keeps open (``HTTPServerConfiguration/connectionLimit``).
    public var limit = 0
    /// Connections closed at once because their client already had
    /// ``HTTPServerConfiguration/perIPConnectionLimit`` connections open.
    public var refusedPerClientLimit = 0
    /// Connections closed at once because ``HTTPServerConfiguration/connectionLimit`` connections were
    /// open.
    public var refusedConnectionLimit = 0
    /// Connections closed because a request head was not complete within
    /// ``HTTPServerConfiguration/headerTimeout`` of its first byte.
    public var headerTimeouts = 0
    /// Connections closed because a request body was not complete within
    /// ``HTTPServerConfiguration/bodyTimeout`` of the end of its head.
    public var bodyTimeouts = 0

    public init() {}
}

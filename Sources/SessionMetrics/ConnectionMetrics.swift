import Prometheus
import Synchronization

/// The `sessiond_http_connections_*` metrics of the API listener: open connections, the limit, and
/// connections refused or cut off by reason, registered next to ``SessionMetrics``.
///
/// The HTTP server keeps the counts; ``update(open:limit:refused:)`` copies them in at each scrape
/// (counters advance by what grew since the last update).
///
/// ```swift
/// let connections = ConnectionMetrics(registry: metrics.registry)
/// metrics.addRefresh {
///     let counts = server.connectionStatistics
///     connections.update(open: counts.open, limit: counts.limit, refused: [.perClientLimit: counts.refusedPerClientLimit])
/// }
/// ```
public final class ConnectionMetrics: Sendable {
    /// Why a connection was refused or cut off: the `reason` label.
    public enum RefusalReason: String, CaseIterable, Sendable {
        /// Its client already had the most connections allowed per client.
        case perClientLimit = "per_client_limit"
        /// The server had the most connections allowed in all.
        case connectionLimit = "connection_limit"
        /// Its request head did not arrive within the header timeout.
        case headerTimeout = "header_timeout"
        /// Its request body did not arrive within the body timeout.
        case bodyTimeout = "body_timeout"
    }

    private let open: Gauge
    private let limit: Gauge
    private let refused: [RefusalReason: Counter]
    private let last = Mutex<[RefusalReason: Int]>([:])

    /// Registers the connection metrics on `registry`.
    public init(registry: PrometheusCollectorRegistry) {
        open = registry.catalogueGauge("sessiond_http_connections_open", "Connections open on the API listener.")
        limit = registry.catalogueGauge(
            "sessiond_http_connections_max",
            "The most connections the API listener keeps open (--connection-limit)."
        )
        refused = Dictionary(
            uniqueKeysWithValues: RefusalReason.allCases.map {
                (
                    $0,
                    registry.catalogueCounter(
                        "sessiond_http_connections_refused_total",
                        "Connections the API listener closed without serving them, by reason.",
                        [("reason", $0.rawValue)]
                    )
                )
            }
        )
    }

    /// Sets the gauges and advances the counters to the server's totals.
    public func update(open: Int, limit: Int, refused totals: [RefusalReason: Int]) {
        self.open.set(to: Double(open))
        self.limit.set(to: Double(limit))
        last.withLock { last in
            for (reason, total) in totals where total > last[reason, default: 0] {
                refused[reason]!.increment(by: Int64(total - last[reason, default: 0]))
                last[reason] = total
            }
        }
    }
}

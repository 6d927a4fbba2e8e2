import Prometheus
import SessionCore
import Synchronization

/// The instrumentation of users-session-manager: every metric of the catalogue, registered once on a
/// swift-prometheus registry, fed by a session backend's statistics and events and by the HTTP layer,
/// and rendered as Prometheus text 0.0.4.
///
/// Gauges (`sessiond_sessions_active`, `sessiond_realtime_users`, `sessiond_users_seen`) and the
/// session counters are set from exact counts (``SessionStatistics``) at each ``refresh(_:)``: they
/// cannot drift from the table. The lifetime histogram is fed by the `ended` events. The request counter
/// and the latency histogram are fed by ``recordRequest(route:method:status:duration:)``, both
/// labelled by route template and method, so that validation (`GET /v1/session`) and logout
/// (`DELETE /v1/session`, which may wait for a storage commit) have separate latencies.
///
/// Embedding (the Node library's PM2 "Realtime Users" counter, done right):
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// let metrics = SessionMetrics(events: store.events, registry: registry)
/// // in your /metrics handler:
/// let body = try metrics.exposition(store.statistics())   // refresh + render, sorted and canonical
/// ```
/// If you render the registry yourself, call ``refresh(_:)`` first.
public final class SessionMetrics: Sendable {
    /// The registry every metric lives in.
    public let registry: PrometheusCollectorRegistry
    private let includeProcessMetrics: Bool

    private let sessionsActive: Gauge
    private let realtimeUsers: Gauge
    private let usersSeen: [Gauge]
    private let created: Counter
    private let expired: [SessionEndReason: Counter]
    private let ended: [SessionEndReason: Counter]
    private let validations: [Counter]
    private let eventsDropped: Counter
    private let slowSubscribersDisconnected: Counter
    private let sessionDuration: ValueHistogram

    let routes: [String: Int]
    let routeNames: [String]
    let requestCounters: Mutex<[RequestKey: Counter]>
    /// The counters of the catalogue's (route, method, success status) triples, at
    /// `route * methods.count + method`, read without a lock; other statuses are in
    /// ``requestCounters``.
    let successCounters: [(status: Int, counter: Counter)?]
    /// The latency children created at init, at `route * methods.count + method`; `nil` for a pair
    /// outside the catalogue (those are in ``lateRequestDurations``).
    let requestDurations: [ValueHistogram?]
    let lateRequestDurations = Mutex<[Int: ValueHistogram]>([:])

    private let scrapes: [Int: Counter]
    private let scrapesInFlight: Gauge

    private let process: ProcessGauges?
    private let last = Mutex(LastCounts())
    private let extraRefreshes = Mutex<[@Sendable () -> Void]>([])

    /// Lifetime buckets, seconds: from a second to a week.
    public static let sessionDurationBuckets: [Double] = [
        1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 604800,
    ]
    /// Request latency buckets, seconds: from 50 µs, since the service answers well under a millisecond.
    public static let requestDurationBuckets: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
    ]
    /// The values of the `method` label; anything else is `OTHER`.
    public static let methods = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "OTHER"]
    /// The `route` label of a request that matched no route.
    public static let unmatchedRoute = "unmatched"

    struct RequestKey: Hashable {
        var route: Int
        var method: Int
        var status: Int
    }

    private struct LastCounts {
        var created = 0
        var ended: [SessionEndReason: Int] = [:]
        var validations = [0, 0, 0, 0]
        var dropped = 0
        var slowSubscribers = 0
        var cpuSeconds = 0.0
        /// Whether `process_start_time_seconds` was set (it is computed once, see ``ProcessGauges``).
        var startTimeSet = false
    }

    /// Registers every metric on `registry`.
    ///
    /// - Parameters:
    ///   - events: the events of the sessions whose lifetimes are exported.
    ///   - registry: where the metrics live (yours, when embedding).
    ///   - build: what `sessiond_build_info` reports.
    ///   - routes: the route templates of the HTTP API, with the methods each answers and their
    ///     success status; those request counters, and a latency histogram child for each
    ///     (route, method) pair, are created at zero.
    ///   - includeProcessMetrics: export the `process_*` metrics (one process should do it once).
    ///   - storeID: the `store` label of the store gauges (sessions, users, users seen): the id of the
    ///     session store they describe, so that instances sharing one store are counted once.
    public init(
        events: SessionEventHub,
        storeID: String = "local",
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        build: BuildInfo = .current,
        routes: [(template: String, responses: [(method: String, status: Int)])] = [],
        includeProcessMetrics: Bool = true
    ) {
        self.registry = registry
        self.includeProcessMetrics = includeProcessMetrics

        let store = [("store", storeID)]
        sessionsActive = registry.catalogueGauge("sessiond_sessions_active", "Live sessions in the store.", store)
        realtimeUsers = registry.catalogueGauge(
            "sessiond_realtime_users",
            "Distinct users with at least one live session.",
            store
        )
        usersSeen = ["1m", "5m", "15m"].map {
            registry.catalogueGauge(
                "sessiond_users_seen",
                "Distinct users that logged in, validated or refreshed within the window.",
                store + [("window", $0)]
            )
        }
        created = registry.catalogueCounter(
            "sessiond_sessions_created_total",
            "Sessions created since the process started."
        )
        expired = Dictionary(
            uniqueKeysWithValues: [SessionEndReason.absoluteTimeout, .idleTimeout].map {
                (
                    $0,
                    registry.catalogueCounter(
                        "sessiond_sessions_expired_total",
                        "Sessions that reached their idle or absolute timeout.",
                        [("reason", $0.rawValue)]
                    )
                )
            }
        )
        ended = Dictionary(
            uniqueKeysWithValues: SessionEndReason.allCases.map {
                (
                    $0,
                    registry.catalogueCounter(
                        "sessiond_sessions_ended_total",
                        "Sessions ended since the process started, by reason.",
                        [("reason", $0.rawValue)]
                    )
                )
            }
        )
        validations = ["valid", "unknown", "expired", "malformed"].map {
            registry.catalogueCounter(
                "sessiond_session_validations_total",
                "Session token validations, by result.",
                [("result", $0)]
            )
        }
        eventsDropped = registry.catalogueCounter(
            "sessiond_events_dropped_total",
            "Session events that a bounded consumer (event stream subscriber) could not take."
        )
        slowSubscribersDisconnected = registry.catalogueCounter(
            "sessiond_events_subscribers_disconnected_total",
            "Event stream subscribers disconnected by the server, by reason (slow: could not keep up).",
            [("reason", "slow")]
        )
        sessionDuration = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "sessiond_session_duration_seconds",
                unitName: "",
                helpText: "Lifetime of sessions at the moment they ended."
            ),
            buckets: Self.sessionDurationBuckets
        )

        var routeIndex: [String: Int] = [:]
        var names: [String] = []
        for (template, _) in routes where routeIndex[template] == nil {
            routeIndex[template] = names.count
            names.append(template)
        }
        routeIndex[Self.unmatchedRoute] = names.count
        names.append(Self.unmatchedRoute)
        self.routes = routeIndex
        routeNames = names
        // Latency children: every (route, method) of the catalogue, and GET on unmatched paths.
        var durations = [ValueHistogram?](repeating: nil, count: names.count * Self.methods.count)
        let pairs = routes.flatMap { route in route.responses.map { (route.template, $0.method) } }
        for (template, method) in pairs + [(Self.unmatchedRoute, "GET")] {
            let methodIndex = Self.methodIndex(method)
            let index = Self.durationIndex(route: routeIndex[template]!, method: methodIndex)
            if durations[index] == nil {
                durations[index] = Self.requestDuration(registry, route: template, method: Self.methods[methodIndex])
            }
        }
        var counters: [RequestKey: Counter] = [:]
        var successes = [(status: Int, counter: Counter)?](repeating: nil, count: names.count * Self.methods.count)
        for (template, responses) in routes {
            for (method, status) in responses {
                let key = RequestKey(route: routeIndex[template]!, method: Self.methodIndex(method), status: status)
                let counter = Self.requestCounter(
                    registry,
                    route: template,
                    method: Self.methods[key.method],
                    status: status
                )
                counters[key] = counter
                successes[Self.durationIndex(route: key.route, method: key.method)] = (status, counter)
            }
        }
        requestCounters = Mutex(counters)
        successCounters = successes
        requestDurations = durations

        scrapes = Dictionary(
            uniqueKeysWithValues: [200, 500, 503].map {
                (
                    $0,
                    registry.catalogueCounter(
                        "promhttp_metric_handler_requests_total",
                        "Total number of scrapes by HTTP status code.",
                        [("code", String($0))]
                    )
                )
            }
        )
        scrapesInFlight = registry.catalogueGauge(
            "promhttp_metric_handler_requests_in_flight",
            "Current number of scrapes being served."
        )

        let buildInfo = registry.catalogueGauge(
            "sessiond_build_info",
            "A metric with a constant '1' value labeled by version, revision and swift_version from which sessiond was built.",
            [("revision", build.revision), ("swift_version", build.swiftVersion), ("version", build.version)]
        )
        buildInfo.set(to: 1)
        process = includeProcessMetrics ? ProcessGauges(registry: registry) : nil

        let histogram = sessionDuration
        events.addObserver { event in
            if case .ended = event.kind {
                histogram.record(event.lifetime.seconds)
            }
        }
        // Reads the process's figures now: process_start_time_seconds is set from this first reading.
        refresh(SessionStatistics())
    }

    /// Sets the gauges and counters from `stats` (and the process's own figures, if enabled).
    /// Serialised, so counters never go back.
    public func refresh(_ stats: SessionStatistics) {
        let status = includeProcessMetrics ? ProcessStatus.read() : nil
        last.withLock { last in
            if stats.storeGaugesAvailable {
                sessionsActive.set(to: Double(stats.activeSessions))
                realtimeUsers.set(to: Double(stats.realtimeUsers))
                usersSeen[0].set(to: Double(stats.usersSeenLastMinute))
                usersSeen[1].set(to: Double(stats.usersSeenLast5Minutes))
                usersSeen[2].set(to: Double(stats.usersSeenLast15Minutes))
            }
            Self.advance(created, from: &last.created, to: stats.created)
            for reason in SessionEndReason.allCases {
                let now = stats.ended[reason, default: 0]
                let before = last.ended[reason, default: 0]
                if now > before {
                    ended[reason]!.increment(by: Int64(now - before))
                    expired[reason]?.increment(by: Int64(now - before))
                    last.ended[reason] = now
                }
            }
            let results = [
                stats.validationsValid, stats.validationsUnknown, stats.validationsExpired, stats.validationsMalformed,
            ]
            for index in results.indices {
                Self.advance(validations[index], from: &last.validations[index], to: results[index])
            }
            Self.advance(eventsDropped, from: &last.dropped, to: stats.droppedEvents)
            Self.advance(
                slowSubscribersDisconnected,
                from: &last.slowSubscribers,
                to: stats.slowSubscribersDisconnected
            )
            if let status, let process {
                process.update(status, lastCPU: &last.cpuSeconds, startTimeSet: &last.startTimeSet)
            }
        }
        for refresh in extraRefreshes.withLock({ $0 }) { refresh() }
    }

    /// Runs `refresh` at every ``refresh(_:)`` too (e.g. ``StorageMetrics/refresh()``), so that one
    /// scrape reads every source.
    public func addRefresh(_ refresh: @escaping @Sendable () -> Void) {
        extraRefreshes.withLock { $0.append(refresh) }
    }

    private static func advance(_ counter: Counter, from last: inout Int, to now: Int) {
        guard now > last else { return }
        counter.increment(by: Int64(now - last))
        last = now
    }

    /// Refreshes from `stats` and renders every metric as Prometheus text 0.0.4: families sorted by
    /// name, children by labels, `NaN`/`+Inf`/`-Inf` spelled canonically, ending with a newline.
    /// - Throws: when the registry's output cannot be normalised (nothing partial is returned).
    public func exposition(_ stats: SessionStatistics) throws -> [UInt8] {
        refresh(stats)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        // A store that cannot be read has no value to show: its gauges are left out, not stale.
        return try ExpositionNormalizer.normalize(buffer, omitting: stats.storeGaugesAvailable ? [] : Self.storeGauges)
    }

    /// The families of the store gauges, left out of a scrape while the store cannot be read.
    static let storeGauges: Set<[UInt8]> = Set(
        ["sessiond_sessions_active", "sessiond_realtime_users", "sessiond_users_seen"].map { Array($0.utf8) }
    )

    /// Marks a scrape as started (`promhttp_metric_handler_requests_in_flight`).
    public func scrapeStarted() { scrapesInFlight.increment() }

    /// Marks a scrape as answered with `code` (`promhttp_metric_handler_requests_total`).
    public func scrapeFinished(code: Int) {
        scrapesInFlight.decrement()
        scrapes[code]?.increment()
    }
}

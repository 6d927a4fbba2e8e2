import Prometheus
import Synchronization

/// The HTTP request metrics: `sessiond_http_requests_total` and `sessiond_http_request_duration_seconds`.
extension SessionMetrics {
    static func methodIndex(_ method: String) -> Int {
        methods.firstIndex(of: method) ?? methods.count - 1
    }

    static func durationIndex(route: Int, method: Int) -> Int {
        route * methods.count + method
    }

    static func requestDuration(
        _ registry: PrometheusCollectorRegistry,
        route: String,
        method: String
    ) -> ValueHistogram {
        registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "sessiond_http_request_duration_seconds",
                unitName: "",
                helpText: "Time to handle an HTTP request, by route template and method."
            ),
            labels: [("method", method), ("route", route)],
            buckets: Self.requestDurationBuckets
        )
    }

    /// The child under `key` in `children`, made (under the lock) the first time it is asked for.
    static func child<Key: Hashable & Sendable, Metric: Sendable>(
        _ key: Key,
        in children: borrowing Mutex<[Key: Metric]>,
        make: () -> Metric
    ) -> Metric {
        children.withLock { children in
            if let child = children[key] { return child }
            let child = make()
            children[key] = child
            return child
        }
    }

    static func requestCounter(
        _ registry: PrometheusCollectorRegistry,
        route: String,
        method: String,
        status: Int
    ) -> Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "sessiond_http_requests_total",
                unitName: "",
                helpText: "HTTP requests handled, by method, route template and status code."
            ),
            labels: [("code", String(status)), ("method", method), ("route", route)]
        )
    }

    /// Counts one HTTP request and records its latency. `route` is a route template given at init
    /// (anything else counts as `unmatched`), never a raw path; `method` is one of ``methods``
    /// (anything else counts as `OTHER`).
    ///
    /// The latency histogram `sessiond_http_request_duration_seconds` has one child per (`route`,
    /// `method`). Every pair of the `routes` catalogue, and (`unmatched`, `GET`), is created at init
    /// and recorded into without a lock. Any other pair (a 405 such as `PUT` on a `GET` route, or
    /// an unknown path with a method other than `GET`) is created on first use, under a lock. Both
    /// labels are bounded, so the family never has more than (routes + 1) × 8 children.
    public func recordRequest(route: String?, method: String, status: Int, duration: Duration) {
        recordRequest(routeIndex: routeIndex(of: route), method: method, status: status, duration: duration)
    }

    /// The index of a route template for ``recordRequest(routeIndex:method:status:duration:)``:
    /// resolve each template once, then record without looking the string up on every request.
    /// A template not given at init (or `nil`) is `unmatched`.
    public func routeIndex(of template: String?) -> Int {
        template.flatMap { routes[$0] } ?? routes[Self.unmatchedRoute]!
    }

    /// Same as ``recordRequest(route:method:status:duration:)`` with a route index from
    /// ``routeIndex(of:)``. A request of the catalogue answered with its success status takes no lock.
    public func recordRequest(routeIndex: Int, method: String, status: Int, duration: Duration) {
        let routeIndex = routeNames.indices.contains(routeIndex) ? routeIndex : routes[Self.unmatchedRoute]!
        let key = RequestKey(route: routeIndex, method: Self.methodIndex(method), status: min(max(status, 100), 599))
        let index = Self.durationIndex(route: key.route, method: key.method)
        if let success = successCounters[index], success.status == key.status {
            success.counter.increment()
        } else {
            let counter = Self.child(key, in: requestCounters) {
                Self.requestCounter(
                    registry,
                    route: routeNames[key.route],
                    method: Self.methods[key.method],
                    status: key.status
                )
            }
            counter.increment()
        }
        let histogram =
            requestDurations[index]
            ?? Self.child(index, in: lateRequestDurations) {
                Self.requestDuration(registry, route: routeNames[key.route], method: Self.methods[key.method])
            }
        histogram.record(duration.seconds)
    }
}

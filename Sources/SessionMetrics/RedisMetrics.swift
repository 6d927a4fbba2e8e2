import Prometheus
import SessionRedis
import Synchronization

/// The `sessiond_redis_*` metrics of a Redis store, registered next to ``SessionMetrics``.
///
/// The command-latency histogram is fed as commands are answered (``observe(operation:duration:)``,
/// given to ``RedisSessionBackend/observeCommands(_:)``); the rest is read from the client's and the
/// reaper's counts at each ``update(client:reaperRuns:reaped:)``.
///
/// ```swift
/// let redisMetrics = RedisMetrics(registry: metrics.registry)
/// backend.observeCommands(redisMetrics.observe)
/// metrics.addRefresh {
///     let (runs, reaped) = backend.reaperStatistics
///     redisMetrics.update(client: backend.client.statistics, reaperRuns: runs, reaped: reaped)
/// }
/// ```
public final class RedisMetrics: Sendable {
    private let up: Gauge
    private let durations: [String: ValueHistogram]
    private let otherDuration: ValueHistogram
    private let errors: [RedisClientError.Code: Counter]
    private let reconnects: Counter
    private let reaperRuns: Counter
    private let reaped: Counter
    private let last = Mutex(LastCounts())

    private struct LastCounts {
        var errors: [RedisClientError.Code: Int] = [:]
        var reconnects = 0
        var reaperRuns = 0
        var reaped = 0
    }

    /// Latency buckets, seconds: a pipelined command answers in tens of microseconds on loopback.
    public static let durationBuckets: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
    ]

    public init(registry: PrometheusCollectorRegistry) {
        up = registry.catalogueGauge(
            "sessiond_redis_up",
            "1 when Redis answered the last attempt to reach it, 0 when it is unreachable."
        )
        var durations: [String: ValueHistogram] = [:]
        for operation in RedisSessionBackend.operations {
            durations[operation] = Self.duration(registry, operation)
        }
        self.durations = durations
        otherDuration = Self.duration(registry, "other")
        var errors: [RedisClientError.Code: Counter] = [:]
        for code in RedisClientError.Code.all {
            errors[code] = registry.catalogueCounter(
                "sessiond_redis_errors_total",
                "Redis commands that got no answer, by error (connect, timeout, io, reply, closed).",
                [("error", code.rawValue)]
            )
        }
        self.errors = errors
        reconnects = registry.catalogueCounter(
            "sessiond_redis_reconnects_total",
            "Connections to Redis opened again after one failed."
        )
        reaperRuns = registry.catalogueCounter(
            "sessiond_redis_reaper_runs_total",
            "Runs of this instance's reaper over every partition's deadlines."
        )
        reaped = registry.catalogueCounter(
            "sessiond_redis_sessions_reaped_total",
            "Sessions ended by this instance's reaper (idle or absolute timeout)."
        )
    }

    /// Records how long Redis took to answer `operation` (queueing included).
    @Sendable
    public func observe(_ operation: String, _ duration: Duration) {
        (durations[operation] ?? otherDuration).record(
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        )
    }

    /// Sets the gauge and advances the counters from the client's and the reaper's counts.
    public func update(client: RedisClientStatistics, reaperRuns runs: Int, reaped count: Int) {
        last.withLock { last in
            up.set(to: client.isUp ? 1 : 0)
            for (code, counter) in errors {
                let now = client.errors[code, default: 0]
                if now > last.errors[code, default: 0] {
                    counter.increment(by: Int64(now - last.errors[code, default: 0]))
                    last.errors[code] = now
                }
            }
            Self.advance(reconnects, &last.reconnects, client.reconnects)
            Self.advance(reaperRuns, &last.reaperRuns, runs)
            Self.advance(reaped, &last.reaped, count)
        }
    }

    private static func advance(_ counter: Counter, _ last: inout Int, _ now: Int) {
        guard now > last else { return }
        counter.increment(by: Int64(now - last))
        last = now
    }

    private static func duration(_ registry: PrometheusCollectorRegistry, _ operation: String) -> ValueHistogram {
        registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "sessiond_redis_command_duration_seconds",
                unitName: "",
                helpText: "Time for Redis to answer a command of this instance, queueing included, by operation."
            ),
            labels: [("operation", operation)],
            buckets: durationBuckets
        )
    }
}

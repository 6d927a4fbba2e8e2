import Prometheus
import SessionStorage
import Synchronization

/// The `sessiond_storage_*` metrics of a ``SessionStorage``, registered next to ``SessionMetrics``.
///
/// Counters and gauges are read from the storage's exact statistics at each ``refresh()``; the
/// batch-size and commit-latency histograms are fed by the storage's commit observer.
///
/// ```swift
/// let storageMetrics = StorageMetrics(storage: storage, registry: metrics.registry)
/// metrics.addRefresh(storageMetrics.refresh)
/// ```
public final class StorageMetrics: Sendable {
    private let storage: SessionStorage
    private let writes: [Counter]
    private let commits: Counter
    private let errors: [StorageError.Code: Counter]
    private let batchSize: ValueHistogram
    private let commitDuration: ValueHistogram
    private let pending: Gauge
    private let uncommittedAge: Gauge
    private let writable: Gauge
    private let fileBytes: Gauge
    private let replayDuration: Gauge
    private let replayed: [Gauge]
    private let last = Mutex(LastCounts())

    /// Rows per commit.
    public static let batchSizeBuckets: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 65536]
    /// Commit latency, seconds (one fsync on this class of machine is 0.1–10 ms).
    public static let commitDurationBuckets: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
    ]
    /// The `kind` label values of `sessiond_storage_writes_total`.
    public static let writeKinds = ["upsert", "touch", "remove"]
    /// Error codes whose counters exist from the start.
    public static let errorCodes: [StorageError.Code] = [.diskFull, .ioError, .corruptDatabase, .directoryNotWritable]

    private struct LastCounts {
        var writes = [0, 0, 0]
        var commits = 0
        var errors: [StorageError.Code: Int] = [:]
    }

    /// Registers the storage metrics on `registry` and observes `storage`'s commits.
    public init(storage: SessionStorage, registry: PrometheusCollectorRegistry) {
        self.storage = storage
        writes = Self.writeKinds.map {
            registry.catalogueCounter(
                "sessiond_storage_writes_total",
                "Rows written to storage by committed transactions, by kind.",
                [("kind", $0)]
            )
        }
        commits = registry.catalogueCounter(
            "sessiond_storage_commits_total",
            "Successful storage commits (each one group of changes, one fsync)."
        )
        var errors: [StorageError.Code: Counter] = [:]
        for code in Self.errorCodes {
            errors[code] = registry.catalogueCounter(
                "sessiond_storage_errors_total",
                "Failed storage commits, by error.",
                [("error", code.rawValue)]
            )
        }
        self.errors = errors
        batchSize = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "sessiond_storage_commit_batch_size",
                unitName: "",
                helpText: "Changes per storage commit."
            ),
            buckets: Self.batchSizeBuckets
        )
        commitDuration = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "sessiond_storage_commit_duration_seconds",
                unitName: "",
                helpText: "Time to write and commit one group of changes, fsync included."
            ),
            buckets: Self.commitDurationBuckets
        )
        pending = registry.catalogueGauge("sessiond_storage_pending_changes", "Changes recorded but not yet committed.")
        uncommittedAge = registry.catalogueGauge(
            "sessiond_storage_uncommitted_age_seconds",
            "Age of the oldest change recorded but not yet committed, 0 when all are committed; grows while commits fail or hang."
        )
        writable = registry.catalogueGauge(
            "sessiond_storage_writable",
            "1 when storage accepts writes, 0 while commits fail (disk full, I/O error)."
        )
        fileBytes = registry.catalogueGauge(
            "sessiond_storage_file_bytes",
            "Size of the database file and its write-ahead log."
        )
        replayDuration = registry.catalogueGauge(
            "sessiond_storage_replay_duration_seconds",
            "Time the startup replay of storage took."
        )
        replayed = ["expired", "restored", "skipped"].map {
            registry.catalogueGauge(
                "sessiond_storage_replayed_sessions",
                "Sessions found in storage at startup, by outcome.",
                [("outcome", $0)]
            )
        }
        let info = registry.catalogueGauge(
            "sessiond_storage_info",
            "A metric with a constant '1' value labeled by the storage durability mode.",
            [("durability", storage.configuration.durability.rawValue)]
        )
        info.set(to: 1)

        let batchSize = batchSize
        let commitDuration = commitDuration
        storage.observeCommits { report in
            guard report.error == nil else { return }
            batchSize.record(Double(report.changes))
            commitDuration.record(report.duration.seconds)
        }
        refresh()
    }

    /// Reads the storage's statistics into the counters and gauges.
    public func refresh() {
        let statistics = storage.statistics()
        last.withLock { last in
            let counts = [statistics.upserts, statistics.touches, statistics.removes]
            for index in counts.indices where counts[index] > last.writes[index] {
                writes[index].increment(by: Int64(counts[index] - last.writes[index]))
                last.writes[index] = counts[index]
            }
            if statistics.commits > last.commits {
                commits.increment(by: Int64(statistics.commits - last.commits))
                last.commits = statistics.commits
            }
            for (code, count) in statistics.errors where count > last.errors[code, default: 0] {
                // Codes outside the pre-created set are counted as io_error.
                (errors[code] ?? errors[.ioError])?.increment(by: Int64(count - last.errors[code, default: 0]))
                last.errors[code] = count
            }
            pending.set(to: Double(statistics.pendingChanges))
            uncommittedAge.set(to: statistics.uncommittedAge?.seconds ?? 0)
            writable.set(to: statistics.isWritable ? 1 : 0)
            fileBytes.set(to: Double(statistics.fileBytes))
            if let replay = statistics.replay {
                replayDuration.set(to: replay.duration.seconds)
                replayed[0].set(to: Double(replay.expiredCount))
                replayed[1].set(to: Double(replay.restored))
                replayed[2].set(to: Double(replay.skipped))
            }
        }
    }
}

import Dispatch
import Logging
import SessionCore
import Synchronization

/// Durable storage of a ``SessionStore`` in an SQLite file (WAL mode), written behind the store by
/// one writer thread with group commit, so request threads never wait on the disk one write at a
/// time.
///
/// ```swift
/// let storage = try SessionStorage(configuration: .init(dataDirectory: "./data", durability: .commit))
/// let report = try storage.replay(into: store)   // before serving: restores every live session
/// store.attachJournal(storage)                   // from now on every change is recorded
/// storage.start()
/// // after a write, in commit mode, acknowledge only once it is durable:
/// storage.afterCommit { error in respond(error == nil ? created : unavailable) }
/// // at shutdown, after the server has stopped:
/// storage.close()
/// ```
///
/// Only SHA-256(token) is stored, never a token. Slides of the idle deadline are coalesced (see
/// ``SessionJournal``). When a commit fails (disk full, I/O error) the batch is kept and retried
/// every ``Configuration/retryInterval``, ``isWritable`` turns `false` (the API refuses writes with
/// 503 while reads keep working) and turns `true` again after the next successful commit.
public final class SessionStorage: SessionJournal, Sendable {
    /// The database file's name in the data directory.
    public static let fileName = "sessions.sqlite3"

    public let configuration: Configuration
    /// The database file.
    public let path: String

    private let directory: DataDirectory
    private let table: SessionTable
    private let queue = CommitQueue()
    private let logger: Logger
    /// A bare optional closure in a `Mutex` gets re-wrapped in a reabstraction thunk at every
    /// `withLock { $0 }` (a chain that grows with each commit); a struct around it does not.
    private struct CommitObserver {
        let call: @Sendable (CommitReport) -> Void
    }
    private let commitObserver = Mutex<CommitObserver?>(nil)
    private let opening: StorageSchema.Outcome
    private let previousShutdownWasClean: Bool
    private let counters = Mutex(StorageStatistics())
    private let lifecycle = Mutex(Lifecycle.opened)
    private let writerStopped = DispatchSemaphore(value: 0)
    /// Started with the writer; see ``WALCheckpointer``.
    private let checkpointer = Mutex<WALCheckpointer?>(nil)
    /// Tests: a page limit for the writer to apply before its next commit (`.some(nil)` lifts it).
    private let requestedPageLimit = Mutex<Int64??>(nil)

    private enum Lifecycle {
        case opened
        case running
        case closed
    }

    /// Opens (creating if needed) the data directory and its database, locks the directory, and
    /// migrates an older schema.
    ///
    /// - Parameters:
    ///   - configuration: where and how to store.
    ///   - logger: for opening, failures and recoveries (never a token: there is none to log).
    /// - Throws: ``StorageError``: `data_directory_missing`, `data_directory_not_writable`,
    ///   `data_directory_locked`, `corrupt_database`, `foreign_database`, `schema_too_new`,
    ///   `disk_full`, `io_error`.
    public convenience init(
        configuration: Configuration,
        logger: Logger = Logger(label: "sessiond.storage")
    ) throws(StorageError) {
        try self.init(configuration: configuration, logger: logger, schemaVersion: StorageSchema.currentVersion)
    }

    /// Opens the storage with the schema brought only to `schemaVersion` (tests build old files).
    init(configuration: Configuration, logger: Logger, schemaVersion: Int) throws(StorageError) {
        self.configuration = configuration
        self.logger = logger
        directory = try DataDirectory(path: configuration.dataDirectory)
        path = directory.path + "/" + Self.fileName
        let database: SQLiteDatabase
        do throws(SQLiteError) {
            database = try SQLiteDatabase(path: path)
        } catch {
            throw StorageError.sqlite(error, path: path, action: "opening the database")
        }
        do {
            // Read-only first: a damaged, foreign or too new file is refused untouched.
            let state = try StorageSchema.inspect(database, path: path)
            // auto_vacuum must be chosen before the first table exists.
            if state == .new { try database.execute("PRAGMA auto_vacuum = INCREMENTAL") }
            let mode = try Self.text(database, "PRAGMA journal_mode = WAL")
            guard mode == "wal" else {
                throw StorageError(code: .ioError, message: "\(path): cannot switch to WAL mode (journal mode is \(mode))")
            }
            try database.execute("PRAGMA synchronous = \(configuration.durability == .fsync ? "FULL" : "NORMAL")")
            try database.execute("PRAGMA journal_size_limit = 67108864")
            try database.execute("PRAGMA cache_size = -8192")
            opening = try StorageSchema.prepare(database, state: state, upTo: schemaVersion)
            table = try SessionTable(database: database)
            let marker = schemaVersion < 2 || opening.createdFile ? nil : try table.meta("clean_shutdown")
            previousShutdownWasClean = marker != "0"
        } catch {
            database.close()
            throw StorageError.caught(error, path: path, action: "opening the database")
        }
        logger.info(
            "storage opened",
            metadata: [
                "file": "\(path)", "durability": "\(configuration.durability.rawValue)",
                "created": "\(opening.createdFile)",
                "migrated_from_schema": "\(opening.migratedFrom.map(String.init) ?? "none")",
            ]
        )
    }

    private static func text(_ database: SQLiteDatabase, _ sql: String) throws(SQLiteError) -> String {
        let statement = try database.prepare(sql)
        defer { statement.finalize() }
        return try statement.step() ? statement.text(0) : ""
    }

    // MARK: Replay

    /// Reads every stored session back into `store` (call once, before ``start()`` and before
    /// serving): live ones are restored with their remaining deadlines, those whose deadline passed
    /// while the service was down are ended (counted once, by reason) and deleted from the file.
    ///
    /// - Parameters:
    ///   - store: an empty store without a journal.
    ///   - batchSize: rows per restore call.
    ///   - progress: called with the number of rows read so far, every `batchSize` rows.
    public func replay(
        into store: SessionStore,
        batchSize: Int = 8192,
        progress: ((Int) -> Void)? = nil
    ) throws(StorageError) -> ReplayReport {
        let start = ContinuousClock.now
        // Reading (this thread) and restoring (up to two batches at once) overlap.
        let restorers = DispatchQueue(label: "sessiond.storage.replay", attributes: .concurrent)
        let slots = DispatchSemaphore(value: 2)
        let group = DispatchGroup()
        let merged = RestoreAccumulator()
        var read = 0
        let undecodable: Int
        do {
            defer { group.wait() }
            undecodable = try table.readAll(batchSize: max(1, batchSize)) { records in
                slots.wait()
                restorers.async(group: group) {
                    merged.add(store.restore(records))
                    slots.signal()
                }
                read += records.count
                progress?(read)
            }
        }
        let restore = merged.total
        do {
            try table.delete(restore.expiredRecords)
        } catch {
            throw StorageError.sqlite(error, path: path, action: "deleting expired sessions after replay")
        }
        var report = ReplayReport()
        report.restored = restore.restored
        report.expired = restore.expired
        report.skipped = restore.skipped + undecodable
        report.duration = ContinuousClock.now - start
        report.previousShutdownWasClean = previousShutdownWasClean
        report.migratedFromVersion = opening.migratedFrom
        report.createdFile = opening.createdFile
        counters.withLock { $0.replay = report }
        if report.skipped > 0 {
            logger.warning("replay skipped rows it could not restore", metadata: ["skipped": "\(report.skipped)"])
        }
        return report
    }

    // MARK: Writing

    /// Starts the writer thread. Attach the storage to the store (``SessionStore/attachJournal(_:)``)
    /// first, after ``replay(into:batchSize:progress:)``.
    public func start() {
        let shouldStart = lifecycle.withLock { state -> Bool in
            guard case .opened = state else { return false }
            state = .running
            return true
        }
        guard shouldStart else { return }
        // From now on the file is being written: a crash before close() leaves this mark.
        do {
            try table.setMeta("clean_shutdown", "0")
        } catch {
            logger.warning("could not mark the storage as in use", metadata: ["error": "\(error)"])
        }
        measureFileBytes()
        DispatchQueue(label: "sessiond.storage.writer").async { [self] in
            runWriter()
            writerStopped.signal()
        }
        do {
            let started = try WALCheckpointer(path: path, interval: configuration.syncInterval, logger: logger)
            checkpointer.withLock { $0 = started }
        } catch {
            // The writer's automatic checkpoints (every 1000 pages) still bound the log.
            logger.warning(
                "storage checkpointer could not start; the log is folded in every 1000 pages by the writer",
                metadata: ["error": "\(StorageError.sqlite(error, path: path, action: "opening the checkpointer"))"]
            )
        }
    }

    /// Tests: checkpoints completed by the checkpointer thread.
    var checkpointsForTesting: Int { checkpointer.withLock { $0?.checkpoints ?? 0 } }

    /// ``SessionJournal``: queues the change for the next commit.
    public func record(_ change: SessionChange) { queue.record(change) }

    /// ``SessionJournal``: a slide is written when `lastSeenAt` crosses a multiple of
    /// idleTimeout / ``Configuration/slideStepDivisor`` (at least one second).
    public func slideStep(idleTimeout: Int64) -> Int64 { max(1000, idleTimeout / configuration.slideStepDivisor) }

    /// Calls `completion` on the writer thread once every change recorded so far is committed
    /// (`nil`), or with the error of the commit that could not write them (their changes stay queued
    /// and are retried). Calls it at once when nothing is pending.
    public func afterCommit(_ completion: @escaping @Sendable (StorageError?) -> Void) {
        queue.afterCommit(completion)
    }

    /// `false` while the last commit failed; writes should be refused until it turns `true`.
    public var isWritable: Bool { queue.failure == nil && lifecycle.withLock { if case .closed = $0 { false } else { true } } }

    /// The error of the last failed commit, while no commit has succeeded since.
    public var lastError: StorageError? { queue.failure }

    /// Calls `observer` on the writer thread after every commit attempt (for histograms); replaces
    /// an observer set before.
    public func observeCommits(_ observer: @escaping @Sendable (CommitReport) -> Void) {
        commitObserver.withLock { $0 = CommitObserver(call: observer) }
    }

    /// Exact counts for metrics. Touches no file: a scrape must not hang on a hung disk
    /// (``StorageStatistics/fileBytes`` is measured by the writer thread).
    public func statistics() -> StorageStatistics {
        var statistics = counters.withLock { $0 }
        statistics.pendingChanges = queue.pendingCount
        statistics.uncommittedAge = queue.oldestUncommittedAge
        statistics.isWritable = isWritable
        return statistics
    }

    /// Commits what is pending, stops the writer, marks the file as cleanly shut down and closes it.
    /// Call after the HTTP server stopped. Idempotent.
    ///
    /// - Returns: how many changes could not be committed and were dropped (0 normally; more when
    ///   storage could not write during the whole stop, e.g. a full disk). A later call returns 0.
    @discardableResult
    public func close() -> Int { close(markingClean: true) }

    /// Tests: stops like a crash would leave the file (no clean-shutdown mark).
    func simulateCrashForTesting() { _ = close(markingClean: false) }

    /// Tests: lets the file grow by only `extraPages` more pages (`nil`: no limit), so that commits
    /// fail with SQLITE_FULL exactly as on a full disk.
    func limitFileForTesting(extraPages: Int64?) { requestedPageLimit.withLock { $0 = .some(extraPages) } }

    private func close(markingClean: Bool) -> Int {
        let wasRunning = lifecycle.withLock { state -> Bool? in
            switch state {
            case .closed: return nil
            case .opened:
                state = .closed
                return false
            case .running:
                state = .closed
                return true
            }
        }
        guard let wasRunning else { return 0 }
        if wasRunning {
            checkpointer.withLock { $0 }?.stop()
            queue.stop()
            writerStopped.wait()
        }
        let lost = queue.close(error: StorageError(code: .closed, message: "storage is closed"))
        if lost > 0 {
            logger.error("storage closed with uncommitted changes", metadata: ["lost_changes": "\(lost)"])
        } else if markingClean && wasRunning {
            do {
                try table.setMeta("clean_shutdown", "1")
                // Fold the log into the database file now, so the next start has nothing to redo.
                _ = try table.database.integer("PRAGMA wal_checkpoint(TRUNCATE)")
            } catch {
                logger.warning(
                    "storage could not be checkpointed at shutdown; the write-ahead log is kept and replayed at the next start",
                    metadata: ["error": "\(StorageError.sqlite(error, path: path, action: "checkpoint"))"]
                )
            }
        }
        table.close()
        directory.release()
        logger.info("storage closed", metadata: ["file": "\(path)"])
        return lost
    }

    /// Records the size of the database file and its log for ``statistics()``.
    private func measureFileBytes() {
        let bytes = directory.fileSize(Self.fileName) + directory.fileSize(Self.fileName + "-wal")
        counters.withLock { $0.fileBytes = bytes }
    }

    private func runWriter() {
        let interval = DispatchTimeInterval.milliseconds(Int(configuration.commitInterval.milliseconds))
        let retry = DispatchTimeInterval.milliseconds(Int(configuration.retryInterval.milliseconds))
        var lastCommit = DispatchTime.now()
        var lastVacuum = ContinuousClock.now
        var failingSince: ContinuousClock.Instant?
        var failuresAtStop = 0
        var previousBatchSize = 0
        var batch: [SessionChange] = []
        let gatherWindow = DispatchTimeInterval.microseconds(Int(configuration.commitGatherWindow.microseconds))
        let gathers = configuration.durability.acknowledgesAfterCommit && configuration.commitGatherWindow > .zero
        var lastMeasure = ContinuousClock.now
        while true {
            queue.waitForWork(until: lastCommit + interval)
            // Here rather than at scrape time: on a hung file system the writer waits, not a scrape.
            // The writer wakes at least every commit interval, so the size is at most ~1 s old.
            if ContinuousClock.now - lastMeasure >= .seconds(1) {
                lastMeasure = ContinuousClock.now
                measureFileBytes()
            }
            if gathers, previousBatchSize > 1, failingSince == nil {
                // Several clients are writing: let the batch grow a little, so that one transaction
                // (and one wake-up of the waiting connections) serves more of them.
                queue.gather(until: DispatchTime.now() + gatherWindow, target: configuration.commitGatherTarget)
            }
            let (last, stopping) = queue.takeBatch(into: &batch)
            previousBatchSize = batch.count
            lastCommit = DispatchTime.now()
            if batch.isEmpty {
                if stopping { return }
                continue
            }
            if let limit = requestedPageLimit.withLock({ value -> Int64?? in defer { value = nil }; return value }) {
                let pages = (try? table.database.integer("PRAGMA page_count")) ?? 0
                _ = try? table.database.integer("PRAGMA max_page_count = \(limit.map { pages + $0 } ?? 4_294_967_294)")
            }
            let start = ContinuousClock.now
            do {
                let writes = try table.apply(batch[...])
                let duration = ContinuousClock.now - start
                counters.withLock { statistics in
                    statistics.upserts += writes.upserts
                    statistics.touches += writes.touches
                    statistics.removes += writes.removes
                    statistics.commits += 1
                }
                queue.committed(through: last)
                commitObserver.withLock { $0 }?.call(CommitReport(changes: batch.count, duration: duration, error: nil))
                if let since = failingSince {
                    logger.notice(
                        "storage is writable again",
                        metadata: ["after_seconds": "\((ContinuousClock.now - since).components.seconds)"]
                    )
                    failingSince = nil
                }
                if ContinuousClock.now - lastVacuum > .seconds(60) {
                    lastVacuum = ContinuousClock.now
                    do {
                        try table.vacuumIfMostlyFree()
                    } catch {
                        logger.warning("incremental vacuum failed", metadata: ["error": "\(error)"])
                    }
                }
            } catch {
                let storageError = StorageError.sqlite(error, path: path, action: "commit")
                counters.withLock { $0.errors[storageError.code, default: 0] += 1 }
                queue.failed(batch, through: last, error: storageError)
                commitObserver.withLock { $0 }?.call(
                    CommitReport(changes: batch.count, duration: ContinuousClock.now - start, error: storageError.code)
                )
                if failingSince == nil {
                    failingSince = ContinuousClock.now
                    logger.error(
                        "storage commit failed; writes are refused until it recovers",
                        metadata: ["error": "\(storageError)", "pending_changes": "\(batch.count)"]
                    )
                }
                if stopping {
                    failuresAtStop += 1
                    if failuresAtStop >= 3 { return }
                    // `pause` no longer waits once stopping; a shutdown still gives a passing failure
                    // (a disk momentarily full) two retry intervals to clear before it drops changes.
                    _ = DispatchSemaphore(value: 0).wait(timeout: DispatchTime.now() + retry)
                    continue
                }
                queue.pause(until: DispatchTime.now() + retry)
            }
        }
    }
}

/// The restore reports of batches restored concurrently during replay.
private final class RestoreAccumulator: Sendable {
    private let report = Mutex(SessionStore.RestoreReport())

    func add(_ other: SessionStore.RestoreReport) { report.withLock { $0.merge(other) } }
    var total: SessionStore.RestoreReport { report.withLock { $0 } }
}

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

    let directory: DataDirectory
    let table: SessionTable
    let queue = CommitQueue()
    let logger: Logger
    /// A bare optional closure in a `Mutex` gets re-wrapped in a reabstraction thunk at every
    /// `withLock { $0 }` (a chain that grows with each commit); a struct around it does not.
    struct CommitObserver {
        let call: @Sendable (CommitReport) -> Void
    }
    let commitObserver = Mutex<CommitObserver?>(nil)
    let opening: StorageSchema.Outcome
    let previousShutdownWasClean: Bool
    /// The file's id (`storage_meta` `store_id`, made when first missing and stored by ``start()``):
    /// the `store` label of the store gauges, stable across restarts.
    public let storeID: String
    private let storeIDIsStored: Bool
    let counters = Mutex(StorageStatistics())
    let lifecycle = Mutex(Lifecycle.opened)
    let writerStopped = DispatchSemaphore(value: 0)
    /// Started with the writer; see ``WALCheckpointer``.
    let checkpointer = Mutex<WALCheckpointer?>(nil)
    /// Work queued for the writer thread's database connection (see ``runOnWriter(_:)``).
    let writerTasks = Mutex<[@Sendable (SQLiteDatabase) -> Void]>([])

    enum Lifecycle {
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
                throw StorageError(
                    code: .ioError,
                    message: "\(path): cannot switch to WAL mode (journal mode is \(mode))"
                )
            }
            try database.execute("PRAGMA synchronous = \(configuration.durability == .fsync ? "FULL" : "NORMAL")")
            try database.execute("PRAGMA journal_size_limit = 67108864")
            try database.execute("PRAGMA cache_size = -8192")
            opening = try StorageSchema.prepare(database, state: state, upTo: schemaVersion)
            table = try SessionTable(database: database)
            let marker = schemaVersion < 2 || opening.createdFile ? nil : try table.meta("clean_shutdown")
            previousShutdownWasClean = marker != "0"
            // Read only: a file refused later (damaged) is left untouched; a new id is stored by start().
            let known = schemaVersion >= 2 ? try table.meta("store_id") : nil
            storeID = known ?? (0..<12).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
            storeIDIsStored = known != nil || schemaVersion < 2
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
            if !storeIDIsStored { try table.setMeta("store_id", storeID) }
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
    public var isWritable: Bool {
        queue.failure == nil && lifecycle.withLock { if case .closed = $0 { false } else { true } }
    }

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

    /// Runs `task` on the writer thread with its database connection, before its next commit (the
    /// connection is only ever used by that thread). Tasks queued after ``close()`` never run.
    func runOnWriter(_ task: @escaping @Sendable (SQLiteDatabase) -> Void) {
        writerTasks.withLock { $0.append(task) }
    }

    func close(markingClean: Bool) -> Int {
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
}

import Dispatch
import Logging
import SessionCore
import Synchronization

/// Folds the write-ahead log into the database file (a passive checkpoint) every `interval`, on its
/// own thread and its own connection, so that the writer thread never stalls on it.
///
/// A checkpoint copies the pages committed since the previous one into the database file and syncs
/// both files. Run by the writer once a second, it held up every request waiting for a commit
/// meanwhile; in WAL mode a passive checkpoint by another connection runs alongside commits. The
/// fsync it ends with still slows the writer's own writes to the same file system, so the interval
/// is short (250 ms): smaller flushes, and a shorter power-loss window. Measured p99 of commit-mode
/// logins (wrk -c50): 17–25 ms with a checkpoint once a second (by the writer, or by this thread),
/// 16–17 ms every 250 ms.
///
/// In `commit` and `interval` durability this is also what bounds a power loss to the last
/// `interval`: the log reaches the disk at each checkpoint.
///
/// `@unchecked Sendable`: the connection is used only by the checkpointer's thread, and by
/// ``stop()`` after that thread has finished.
final class WALCheckpointer: @unchecked Sendable {
    private let database: SQLiteDatabase
    private let interval: Duration
    private let logger: Logger
    private let wakeup = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    private let failing = Atomic<Bool>(false)
    private let completed = Atomic<Int>(0)

    /// Opens a second connection to `path` and starts checkpointing every `interval`.
    init(path: String, interval: Duration, logger: Logger) throws(SQLiteError) {
        database = try SQLiteDatabase(path: path)
        self.interval = interval
        self.logger = logger
        DispatchQueue(label: "sessiond.storage.checkpointer").async { [self] in
            run()
            stopped.signal()
        }
    }

    /// Checkpoints that completed (for tests and logs).
    var checkpoints: Int { completed.load(ordering: .relaxed) }

    /// Stops the thread (after the checkpoint in progress, if any) and closes the connection.
    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        wakeup.signal()
        stopped.wait()
        database.close()
    }

    private func run() {
        let period = DispatchTimeInterval.microseconds(Int(interval.microseconds))
        while !stopping.load(ordering: .relaxed) {
            _ = wakeup.wait(timeout: .now() + period)
            if stopping.load(ordering: .relaxed) { return }
            do {
                _ = try database.integer("PRAGMA wal_checkpoint(PASSIVE)")
                completed.add(1, ordering: .relaxed)
                if failing.exchange(false, ordering: .relaxed) { logger.notice("storage checkpoint works again") }
            } catch {
                // The log keeps the changes; the writer's automatic checkpoint (every 1000 pages)
                // and the next attempt here fold them in later.
                if !failing.exchange(true, ordering: .relaxed) {
                    logger.warning("storage checkpoint failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

import Synchronization

extension SessionStorage {
    /// Checkpoints completed by the checkpointer thread.
    var checkpointsForTesting: Int { checkpointer.withLock { $0?.checkpoints ?? 0 } }

    /// Stops the way a crash leaves the file: without the clean-shutdown mark.
    func simulateCrashForTesting() { _ = close(markingClean: false) }

    /// Lets the file grow by only `extraPages` more pages (`nil`: no limit) from the writer's next
    /// commit on, so that commits fail with `SQLITE_FULL` exactly as on a full disk.
    func limitFileForTesting(extraPages: Int64?) {
        runOnWriter { database in
            let pages = (try? database.integer("PRAGMA page_count")) ?? 0
            _ = try? database.integer("PRAGMA max_page_count = \(extraPages.map { pages + $0 } ?? 4_294_967_294)")
        }
    }
}

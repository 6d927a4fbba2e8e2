import Dispatch
import Logging
import SessionCore
import Synchronization

extension SessionStorage {
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
        // An id stored twice (a damaged file: the table's key is created_at and id) is restored once;
        // the store checks ids per shard, and two rows of one id may belong to users of two shards.
        var seenIDs = Set<SessionID>()
        var repeatedIDs = 0
        do {
            defer { group.wait() }
            undecodable = try table.readAll(batchSize: max(1, batchSize)) { batch in
                let records = batch.filter { seenIDs.insert($0.id).inserted }
                repeatedIDs += batch.count - records.count
                slots.wait()
                restorers.async(group: group) {
                    merged.add(store.restore(records))
                    slots.signal()
                }
                read += batch.count
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
        report.skipped = restore.skipped + undecodable + repeatedIDs
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
}

/// The restore reports of batches restored concurrently during replay.
private final class RestoreAccumulator: Sendable {
    private let report = Mutex(SessionStore.RestoreReport())

    func add(_ other: SessionStore.RestoreReport) { report.withLock { $0.merge(other) } }
    var total: SessionStore.RestoreReport { report.withLock { $0 } }
}

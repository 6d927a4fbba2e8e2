import Dispatch
import Logging
import SessionCore
import Synchronization

extension SessionStorage {
    /// Records the size of the database file and its log for ``statistics()``.
    func measureFileBytes() {
        let bytes = directory.fileSize(Self.fileName) + directory.fileSize(Self.fileName + "-wal")
        counters.withLock { $0.fileBytes = bytes }
    }

    func runWriter() {
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
            for task in writerTasks.withLock({ tasks in
                defer { tasks = [] }
                return tasks
            }) { task(table.database) }
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
                    // `pause` does not wait once stopping; a shutdown still gives a passing failure
                    // (a disk momentarily full) two retry intervals to clear before it drops changes.
                    _ = DispatchSemaphore(value: 0).wait(timeout: DispatchTime.now() + retry)
                    continue
                }
                queue.pause(until: DispatchTime.now() + retry)
            }
        }
    }
}

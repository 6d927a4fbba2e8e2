import Dispatch
import SessionCore
import Synchronization
import Testing

@testable import SessionStorage

#if canImport(Glibc)
import Glibc
#endif

@Suite("CommitQueue group commit")
struct CommitQueueTests {
    private static func change(_ number: UInt8) -> SessionChange {
        let bytes = [UInt8](repeating: number, count: 16)
        let id = bytes.withUnsafeBytes { SessionID(bytes: $0)! }
        return .remove(id: id, createdAt: Int64(number), reason: .logout)
    }

    @Test("gathering ends as soon as the target number of changes is pending")
    func gatherEndsAtTarget() {
        let queue = CommitQueue()
        let started = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let elapsed = Mutex<Duration>(.zero)
        DispatchQueue(label: "commit-queue-test").async {
            let clock = ContinuousClock()
            let start = clock.now
            started.signal()
            queue.gather(until: .now() + .seconds(30), target: 3)
            elapsed.withLock { $0 = clock.now - start }
            finished.signal()
        }
        started.wait()
        usleep(50_000)
        for number: UInt8 in 1...3 { queue.record(Self.change(number)) }
        #expect(finished.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(elapsed.withLock { $0 } < .seconds(10))
        var batch: [SessionChange] = []
        let (last, stopping) = queue.takeBatch(into: &batch)
        #expect(batch.count == 3 && last == 3 && !stopping)
    }

    @Test("a request that starts waiting does not cut the gathering short; the window ends it")
    func waitersDoNotWakeAGatheringWriter() {
        let queue = CommitQueue()
        queue.record(Self.change(1))
        let clock = ContinuousClock()
        let start = clock.now
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) {
            queue.afterCommit { _ in }
        }
        queue.gather(until: .now() + .milliseconds(300), target: 100)
        #expect(clock.now - start >= .milliseconds(250))
    }

    @Test("an idle writer is woken by a waiting request; the batch storage is reused")
    func idleWriterWakesForAWaiter() {
        let queue = CommitQueue()
        queue.record(Self.change(1))
        let answered = Mutex(false)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) {
            queue.afterCommit { error in answered.withLock { $0 = error == nil } }
        }
        let clock = ContinuousClock()
        let start = clock.now
        queue.waitForWork(until: .now() + .seconds(30))
        #expect(clock.now - start < .seconds(10))
        var batch: [SessionChange] = []
        batch.reserveCapacity(64)
        let (last, _) = queue.takeBatch(into: &batch)
        #expect(batch.count == 1 && last == 1)
        queue.committed(through: last)
        #expect(answered.withLock { $0 })
        // The writer's old array (capacity 64) went back to the queue for the next changes.
        queue.record(Self.change(2))
        _ = queue.takeBatch(into: &batch)
        #expect(batch.count == 1)
    }

    private static func id(_ number: Int) -> SessionID {
        let bytes = [UInt8](repeating: UInt8(number), count: 16)
        return bytes.withUnsafeBytes { SessionID(bytes: $0)! }
    }

    private static func upsert(_ number: Int, lastSeenAt: Int64) -> SessionChange {
        .upsert(
            SessionRecord(
                id: id(number),
                tokenHash: [UInt8](repeating: 0, count: 32).withUnsafeBytes { TokenHash(bytes: $0)! },
                username: "u\(number)",
                createdAt: Int64(number),
                lastSeenAt: lastSeenAt,
                expiresAt: 1_000_000,
                idleTimeout: 1000,
                data: nil
            )
        )
    }

    /// The table a sequence of changes leaves: what SessionTable does with each kind of change.
    private static func apply(_ changes: [SessionChange]) -> [SessionID: Int64] {
        var table: [SessionID: Int64] = [:]
        for change in changes {
            switch change {
            case .upsert(let record): table[record.id] = record.lastSeenAt
            case .touch(let id, _, let lastSeenAt, _): if table[id] != nil { table[id] = lastSeenAt }
            case .remove(let id, _, _): table[id] = nil
            }
        }
        return table
    }

    @Test("coalescing keeps what a later change of the same session does not supersede")
    func coalescingRules() {
        let touch = { (number: Int, at: Int64) in
            SessionChange.touch(id: Self.id(number), createdAt: Int64(number), lastSeenAt: at, idleTimeout: 1000)
        }
        let remove = { (number: Int) in
            SessionChange.remove(id: Self.id(number), createdAt: Int64(number), reason: .logout)
        }
        let changes: [SessionChange] = [
            touch(1, 10), Self.upsert(2, lastSeenAt: 5), touch(1, 11), touch(2, 6), touch(3, 7),
            Self.upsert(3, lastSeenAt: 8), touch(2, 9), remove(4), touch(5, 1), remove(5), touch(1, 12),
        ]
        #expect(
            CommitQueue.coalesced(changes) == [
                Self.upsert(2, lastSeenAt: 5), Self.upsert(3, lastSeenAt: 8), touch(2, 9), remove(4), remove(5),
                touch(1, 12),
            ]
        )
        #expect(CommitQueue.coalesced([]) == [])
    }

    @Test("coalesced changes leave the same table as the original ones", arguments: 0..<20)
    func coalescingPreservesTheOutcome(seed: Int) {
        var generator = SystemRandomNumberGenerator()
        var changes: [SessionChange] = []
        for step in 0..<400 {
            let number = Int.random(in: 0..<12, using: &generator)
            let at = Int64(step)
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<6:
                changes.append(.touch(id: Self.id(number), createdAt: Int64(number), lastSeenAt: at, idleTimeout: 1000))
            case 6..<9: changes.append(Self.upsert(number, lastSeenAt: at))
            default: changes.append(.remove(id: Self.id(number), createdAt: Int64(number), reason: .idleTimeout))
            }
        }
        let coalesced = CommitQueue.coalesced(changes)
        #expect(Self.apply(coalesced) == Self.apply(changes), "seed \(seed)")
        // At most two per session: an upsert or a removal, and a touch after it.
        #expect(coalesced.count <= 2 * 12, "\(coalesced.count) changes left")
    }

    @Test("the age of the oldest uncommitted change covers a batch being committed, a hang included")
    func uncommittedAgeCoversTheBatchInFlight() {
        let queue = CommitQueue()
        #expect(queue.oldestUncommittedAge == nil && queue.pendingCount == 0)
        queue.record(Self.change(1))
        #expect(queue.oldestUncommittedAge != nil)
        var batch: [SessionChange] = []
        let (first, _) = queue.takeBatch(into: &batch)
        // The writer holds the batch and does not report (a commit hanging on a stalled disk).
        usleep(60_000)
        let recordedSecond = ContinuousClock.now
        queue.record(Self.change(2))
        #expect(queue.pendingCount == 2, "the batch in flight counts as pending")
        #expect(queue.oldestUncommittedAge.map { $0 >= .milliseconds(60) } == true)
        queue.committed(through: first)
        // Only change 2 is left; it is younger than the batch was.
        #expect(queue.pendingCount == 1)
        #expect(queue.oldestUncommittedAge.map { $0 <= ContinuousClock.now - recordedSecond } == true)
        let (second, _) = queue.takeBatch(into: &batch)
        queue.committed(through: second)
        #expect(queue.oldestUncommittedAge == nil && queue.pendingCount == 0)
    }

    @Test("a failed batch keeps its age when it goes back to the queue")
    func failedBatchKeepsItsAge() {
        let queue = CommitQueue()
        queue.record(Self.change(1))
        var batch: [SessionChange] = []
        let (last, _) = queue.takeBatch(into: &batch)
        usleep(60_000)
        queue.record(Self.change(2))
        queue.failed(batch, through: last, error: StorageError(code: .diskFull, message: "full"))
        #expect(queue.pendingCount == 2)
        #expect(queue.oldestUncommittedAge.map { $0 >= .milliseconds(60) } == true)
    }

    @Test("after close, changes are no longer kept")
    func closedQueueKeepsNothing() {
        let queue = CommitQueue()
        queue.record(Self.change(1))
        #expect(queue.close(error: StorageError(code: .closed, message: "closed")) == 1)
        for number in 2..<100 { queue.record(Self.change(UInt8(number))) }
        #expect(queue.pendingCount == 0)
        #expect(queue.oldestUncommittedAge == nil)
    }
}

import Dispatch
import SessionCore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import SessionStorage

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
}

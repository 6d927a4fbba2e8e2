import DequeModule
import Dispatch
import SessionCore
import Synchronization

/// The changes recorded but not yet committed, numbered in order, and the requests waiting for
/// their commit.
///
/// Request threads append (``record(_:)``) and register waiters; the writer thread takes batches
/// and reports each batch's outcome. Change number `n` is durable once ``committed`` ≥ `n`.
final class CommitQueue: Sendable {
    typealias Completion = @Sendable (StorageError?) -> Void

    private struct State {
        var pending: [SessionChange] = []
        /// Number of the last recorded change.
        var recorded: UInt64 = 0
        /// Every change up to this number is committed.
        var committed: UInt64 = 0
        /// In increasing `sequence` order (appended as changes are recorded), so a commit answers a
        /// prefix.
        var waiters = Deque<(sequence: UInt64, completion: Completion)>()
        var writer = WriterState.busy
        var stopping = false
        var closed = false
        /// Set while the last commit failed.
        var failure: StorageError?
        /// When the oldest change in `pending` was recorded (`nil` while `pending` is empty). Read
        /// once per batch: when a change arrives in an empty queue.
        var pendingSince: ContinuousClock.Instant?
        /// The same for the batch the writer took and has not reported yet.
        var batchSince: ContinuousClock.Instant?
        /// Changes in that batch.
        var batchCount = 0
    }

    /// What the writer thread is doing, which decides who wakes it.
    private enum WriterState {
        /// Committing (or about to): nobody wakes it.
        case busy
        /// Waiting for work: a waiting request or a long queue wakes it.
        case idle
        /// Letting a batch grow (group commit): only `target` pending changes (or a stop) wake it.
        case gathering(target: Int)
    }

    /// A queue this long is committed without waiting for the interval.
    static let eagerBatchSize = 65_536

    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    init() {}

    /// Appends a change (called under a store shard lock: quick, never blocks). Only a long queue
    /// wakes the writer; a waiting request does (``afterCommit(_:)``), and otherwise the writer
    /// commits every interval.
    func record(_ change: SessionChange) {
        let wake = state.withLock { state -> Bool in
            // After close() nothing commits any more: keeping changes would only grow memory.
            if state.closed { return false }
            if state.pendingSince == nil { state.pendingSince = .now }
            state.pending.append(change)
            state.recorded += 1
            let threshold: Int
            switch state.writer {
            case .busy: return false
            case .idle: threshold = Self.eagerBatchSize
            case .gathering(let target): threshold = target
            }
            guard state.pending.count >= threshold else { return false }
            state.writer = .busy
            return true
        }
        if wake { wakeup.signal() }
    }

    /// Calls `completion` once every change recorded so far is committed (`nil`), or with the error
    /// of the commit that failed to write them. Immediately when there is nothing to wait for.
    func afterCommit(_ completion: @escaping Completion) {
        let immediate = state.withLock { state -> StorageError?? in
            if state.closed { return .some(StorageError(code: .closed, message: "storage is closed")) }
            if state.committed >= state.recorded { return .some(nil) }
            state.waiters.append((state.recorded, completion))
            if case .idle = state.writer {
                state.writer = .busy
                wakeup.signal()
            }
            return .none
        }
        if let immediate { completion(immediate) }
    }

    /// The error of the last failed commit, while no commit has succeeded since.
    var failure: StorageError? { state.withLock { $0.failure } }

    /// Changes recorded and not yet committed: those queued and those of the batch being committed.
    var pendingCount: Int { state.withLock { $0.pending.count + $0.batchCount } }

    /// How long the oldest change not yet committed has waited, or `nil` when every change is
    /// committed. It grows while a commit fails *or hangs* (a stalled disk), which the failure
    /// state alone does not show.
    var oldestUncommittedAge: Duration? {
        guard let since = state.withLock({ $0.batchSince ?? $0.pendingSince }) else { return nil }
        return .now - since
    }

    /// Writer: sleeps until `deadline`, or less when a request waits for a commit, the queue is
    /// long, or ``stop()`` was called.
    func waitForWork(until deadline: DispatchTime) {
        let mustWait = state.withLock { state -> Bool in
            let urgent = state.stopping || !state.waiters.isEmpty || state.pending.count >= Self.eagerBatchSize
            state.writer = urgent ? .busy : .idle
            return !urgent
        }
        guard mustWait else { return }
        _ = wakeup.wait(timeout: deadline)
        state.withLock { $0.writer = .busy }
    }

    /// Writer (group commit): sleeps until `deadline`, or less once `target` changes are pending or
    /// ``stop()`` was called. Requests that start waiting meanwhile do not wake it: they are what
    /// the batch is waiting for.
    func gather(until deadline: DispatchTime, target: Int) {
        let mustWait = state.withLock { state -> Bool in
            guard !state.stopping, state.pending.count < target else { return false }
            state.writer = .gathering(target: target)
            return true
        }
        guard mustWait else { return }
        _ = wakeup.wait(timeout: deadline)
        state.withLock { $0.writer = .busy }
    }

    /// Writer: sleeps until `deadline` or ``stop()`` (after a failed commit, before retrying).
    func pause(until deadline: DispatchTime) {
        guard !state.withLock({ $0.stopping }) else { return }
        _ = wakeup.wait(timeout: deadline)
    }

    /// Writer: everything pending goes into `batch` (whose old contents are dropped; its storage is
    /// handed back to the queue, so that a steady stream of commits allocates no arrays). Returns
    /// the number of the batch's last change, and whether to stop after it.
    func takeBatch(into batch: inout [SessionChange]) -> (last: UInt64, stopping: Bool) {
        batch.removeAll(keepingCapacity: true)
        return state.withLock { state in
            swap(&batch, &state.pending)
            state.batchSince = batch.isEmpty ? nil : state.pendingSince
            state.batchCount = batch.count
            state.pendingSince = nil
            return (state.recorded, state.stopping)
        }
    }

    /// Writer: the batch ending at `last` is committed.
    func committed(through last: UInt64) {
        let ready = state.withLock { state -> [Completion] in
            state.committed = max(state.committed, last)
            state.failure = nil
            state.batchSince = nil
            state.batchCount = 0
            return Self.takeWaiters(through: state.committed, from: &state.waiters)
        }
        for completion in ready { completion(nil) }
    }

    /// Writer: the batch ending at `last` failed; it goes back to the front of the queue (to be
    /// retried), and the requests waiting for it are answered with `error`.
    ///
    /// It goes back coalesced (``coalesced(_:)``): while commits keep failing (a full or broken
    /// disk), writes are refused but validations still slide sessions, and without this the queue
    /// would grow by their touches for as long as the outage lasts. Coalesced at each retry, it
    /// holds at most two changes per session (a row write and a touch after it), plus what arrived
    /// since the last retry.
    func failed(_ batch: [SessionChange], through last: UInt64, error: StorageError) {
        // Outside the lock: request threads record changes under it.
        let batch = Self.coalesced(batch)
        let failedWaiters = state.withLock { state -> [Completion] in
            if !batch.isEmpty {
                state.pendingSince = state.batchSince ?? state.pendingSince
            }
            state.batchSince = nil
            state.batchCount = 0
            state.pending = batch + state.pending
            state.failure = error
            return Self.takeWaiters(through: last, from: &state.waiters)
        }
        for completion in failedWaiters { completion(error) }
    }

    /// `changes` without those that a later change of the same session makes redundant, in their
    /// order: an upsert (the whole row, `INSERT OR REPLACE`) or a removal supersedes every earlier
    /// change of its session, a touch earlier touches. An upsert followed by touches keeps both (the
    /// row may not exist yet). Committing the result leaves the table as committing `changes` would.
    static func coalesced(_ changes: [SessionChange]) -> [SessionChange] {
        /// What comes later for a session, walking from the newest change.
        struct Later {
            var replacesRow = false
            var touches = false
        }
        var later: [SessionID: Later] = [:]
        var keep = [Bool](repeating: false, count: changes.count)
        var kept = 0
        for index in changes.indices.reversed() {
            let change = changes[index]
            var seen = later[change.id] ?? Later()
            let superseded: Bool
            switch change {
            case .touch:
                superseded = seen.replacesRow || seen.touches
                seen.touches = true
            case .upsert, .remove:
                superseded = seen.replacesRow
                seen.replacesRow = true
            }
            if !superseded {
                keep[index] = true
                kept += 1
            }
            later[change.id] = seen
        }
        guard kept < changes.count else { return changes }
        var result: [SessionChange] = []
        result.reserveCapacity(kept)
        for index in changes.indices where keep[index] { result.append(changes[index]) }
        return result
    }

    /// Removes and returns the completions of the waiters for changes up to `last` (a prefix).
    private static func takeWaiters(
        through last: UInt64,
        from waiters: inout Deque<(sequence: UInt64, completion: Completion)>
    ) -> [Completion] {
        var taken: [Completion] = []
        while let first = waiters.first, first.sequence <= last {
            taken.append(waiters.removeFirst().completion)
        }
        return taken
    }

    /// Asks the writer to commit what is pending and stop.
    func stop() {
        state.withLock { $0.stopping = true }
        wakeup.signal()
    }

    /// After the writer stopped: answers every remaining waiter with `error`, refuses new ones, and
    /// returns how many changes were never committed.
    func close(error: StorageError) -> Int {
        let (waiters, lost) = state.withLock { state -> ([Completion], Int) in
            state.closed = true
            let waiters = state.waiters.map(\.completion)
            state.waiters = []
            let lost = state.pending.count
            state.pending = []
            state.pendingSince = nil
            state.batchSince = nil
            state.batchCount = 0
            return (waiters, lost)
        }
        for completion in waiters { completion(error) }
        return lost
    }
}

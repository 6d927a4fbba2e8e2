import DequeModule
import Dispatch
import Synchronization

/// One of ``RedisClient``'s connections, as callers and its reader thread share it: the open
/// connection (none while it is being opened again) and the commands written to it that wait for
/// their answers, oldest first.
///
/// The connection for writes that replicas must confirm (``Confirmation``) ends each write to its
/// socket with one `WAIT`, which settles the ``RedisConfirmedWrite``s written since the last one.
final class RedisConnectionSlot: Sendable {
    /// What the `WAIT` of a confirming connection asks for, encoded once.
    struct Confirmation {
        /// Replicas that must hold each write.
        let replicas: Int
        /// `WAIT <replicas> <milliseconds>`, encoded.
        let command: [UInt8]
        /// How long the `WAIT`'s answer may take (the client's timeout).
        let timeoutNanoseconds: UInt64

        /// `WAIT replicas` for at most `wait`; its answer within `timeout`.
        init(replicas: Int, wait: Duration, timeout: Duration) {
            self.replicas = replicas
            var encoded: [UInt8] = []
            let milliseconds = max(1, Int(wait / .milliseconds(1)))
            RedisConnection.encode(
                [Array("WAIT".utf8), Array("\(replicas)".utf8), Array("\(milliseconds)".utf8)],
                into: &encoded
            )
            command = encoded
            timeoutNanoseconds = UInt64(max(1, timeout / .nanoseconds(1)))
        }
    }

    private struct State {
        var connection: RedisConnection?
        var waiting = Deque<RedisRequest>()
        /// Encoded commands not written yet, in the order of ``waiting``.
        var unwritten: [UInt8] = []
        /// Whether a thread (a caller or the reader) is writing ``unwritten`` to the socket (the others
        /// only append to it).
        var isWriting = false
        /// The reader sleeps until a command is written (it reads only what is awaited).
        var readerIdle = false
        var isClosed = false
        /// Writes to be confirmed by the next `WAIT` (queued, not written yet).
        var unconfirmed: [RedisConfirmedWrite] = []
    }

    let index: Int
    /// Set on the connection for writes that replicas must confirm.
    let confirmation: Confirmation?
    /// Writes to the socket so far (each carries one or more commands).
    let writes = Atomic<Int>(0)
    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    init(index: Int, confirmation: Confirmation? = nil) {
        self.index = index
        self.confirmation = confirmation
    }

    var isConnected: Bool { state.withLock { $0.connection != nil } }

    /// Queues encoded commands and their requests (one request per command, in order) and sees that
    /// they are written; `false` when no connection is open (the caller tries another).
    ///
    /// When nothing else awaits an answer, the caller writes at once. Otherwise the commands wait in
    /// the slot and the reader writes them, all together, once it has taken the answers that have
    /// come and before it waits for more: under load one `send` carries the commands of many callers
    /// and Redis reads them in one go, and nobody waits longer than the answers already on their way.
    /// A failed write abandons the connection: its reader then fails what waits, these requests included.
    /// `confirming` are the writes among them that the next `WAIT` settles (on the confirming
    /// connection only).
    func write(_ encoded: [UInt8], _ requests: [RedisRequest], confirming: [RedisConfirmedWrite] = []) -> Bool {
        let (accepted, writeNow, wake) = state.withLock { state -> (Bool, Bool, Bool) in
            guard state.connection != nil, !state.isClosed else { return (false, false, false) }
            let nothingInFlight = state.waiting.isEmpty
            state.waiting.append(contentsOf: requests)
            state.unwritten.append(contentsOf: encoded)
            state.unconfirmed.append(contentsOf: confirming)
            defer { state.readerIdle = false }
            return (true, nothingInFlight, state.readerIdle)
        }
        if wake { wakeup.signal() }
        if writeNow { flush() }
        return accepted
    }

    /// Writes the commands queued in the slot, unless another thread is writing them already (it
    /// then writes these too, in order).
    func flush() {
        let writer = state.withLock { state -> RedisConnection? in
            guard !state.isWriting, !state.unwritten.isEmpty, let connection = state.connection else { return nil }
            state.isWriting = true
            return connection
        }
        guard let writer else { return }
        while true {
            let chunk = state.withLock { state -> [UInt8]? in
                guard !state.unwritten.isEmpty, state.connection === writer else {
                    state.isWriting = false
                    return nil
                }
                defer { state.unwritten.removeAll(keepingCapacity: true) }
                guard let confirmation, !state.unconfirmed.isEmpty else { return state.unwritten }
                // One `WAIT` after the writes of this chunk settles them all.
                let deadline = RedisClient.now() + confirmation.timeoutNanoseconds
                state.waiting.append(
                    RedisConfirmedWrite.waitRequest(
                        for: state.unconfirmed,
                        replicas: confirmation.replicas,
                        deadline: deadline
                    )
                )
                state.unconfirmed.removeAll(keepingCapacity: true)
                return state.unwritten + confirmation.command
            }
            guard let chunk else { return }
            writes.add(1, ordering: .relaxed)
            if !writer.write(chunk) {
                writer.abort()
                state.withLock { $0.isWriting = false }
                return
            }
        }
    }

    // MARK: For the reader thread

    /// The reader opened `connection`.
    func opened(_ connection: RedisConnection) {
        state.withLock { $0.connection = connection }
    }

    /// The connection failed or is closed: no more writes to it; returns what waited for an answer.
    func lost() -> [RedisRequest] {
        state.withLock { state in
            state.connection = nil
            state.unwritten.removeAll()
            // Their requests are among those returned, and fail.
            state.unconfirmed.removeAll()
            defer { state.waiting.removeAll() }
            return Array(state.waiting)
        }
    }

    /// Waits until a command waits for its answer (`true`) or the slot is closed (`false`); at most
    /// `timeout`, then returns whether one waits.
    func awaitWork(timeout: Duration) -> Bool {
        let ready = state.withLock { state -> Bool? in
            if state.isClosed { return false }
            if !state.waiting.isEmpty { return true }
            state.readerIdle = true
            return nil
        }
        if let ready { return ready }
        if wakeup.wait(timeout: .now() + .nanoseconds(Int(timeout / .nanoseconds(1)))) == .timedOut {
            let signalled = state.withLock { state -> Bool in
                guard state.readerIdle else { return true }
                state.readerIdle = false
                return false
            }
            // A writer woke the reader just as the wait ended: take its signal back.
            if signalled { wakeup.wait() }
        }
        return state.withLock { !$0.isClosed && !$0.waiting.isEmpty }
    }

    /// The oldest command waiting for an answer (the one the answer just read belongs to).
    func popOldest() -> RedisRequest? {
        state.withLock { $0.waiting.popFirst() }
    }

    /// Sleeps `duration`, or less when the slot is closed meanwhile.
    func pause(_ duration: Duration) {
        _ = wakeup.wait(timeout: .now() + .nanoseconds(Int(duration / .nanoseconds(1))))
    }

    /// The waiting commands past their deadline (left in place: their answers are read and dropped).
    func overdue(now: UInt64) -> [RedisRequest] {
        state.withLock { state in state.waiting.filter { $0.deadline <= now && !$0.isCompleted } }
    }

    var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Closes the slot: its reader stops (a blocked read is interrupted).
    func close() {
        state.withLock { state in
            state.isClosed = true
            state.connection?.abort()
        }
        wakeup.signal()
    }
}

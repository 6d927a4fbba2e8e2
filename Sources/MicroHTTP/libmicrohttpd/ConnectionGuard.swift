import Dispatch
import Synchronization

/// Keeps one client from making the server unreachable: limits connections per client
/// (``ClientAddress``: an IPv4 address or an IPv6 /64) and in all, and cuts off connections whose
/// request head or body arrives too slowly, whatever their drip rate. Counts what it refused.
///
/// - At accept time (libmicrohttpd's accept policy), a connection from a client that already has
///   ``Limits/perClient`` connections open, or beyond ``Limits/total`` connections in all, is refused:
///   libmicrohttpd closes it at once, so it never waits in the kernel's queue.
/// - A sweep every ``sweepInterval`` looks at every connection that is waiting for a request head:
///   once bytes of a head have arrived (the socket's `TCP_INFO` byte count grew), the head must be
///   complete within ``Limits/headerTimeout``; a body must be complete within ``Limits/bodyTimeout``
///   of the end of its head. A connection past its deadline is shut down (`shutdown(2)`), and
///   libmicrohttpd closes it. Connections being answered (deferred answers, streams) have no deadline.
///
/// Bytes that arrive within a sweep of the end of the previous request on a keep-alive connection are
/// seen only when more bytes follow, so such a head's deadline can start up to one drip interval
/// late; a new connection's first head is timed from the first sweep that sees bytes.
final class ConnectionGuard: Sendable {
    struct Limits: Sendable {
        var perClient: Int
        var total: Int
        var headerTimeout: Duration
        var bodyTimeout: Duration
    }

    private struct State {
        var perClient: [ClientAddress: Int] = [:]
        var records: [ObjectIdentifier: ConnectionRecord] = [:]
        var lastSweep = ConnectionRecord.now()
    }

    static let sweepInterval = Duration.milliseconds(250)

    let limits: Limits
    private let state = Mutex(State())
    private let refusedPerClient = Atomic<Int>(0)
    private let refusedTotal = Atomic<Int>(0)
    private let headerTimeouts = Atomic<Int>(0)
    private let bodyTimeouts = Atomic<Int>(0)
    private let queue = DispatchQueue(label: "MicroHTTP.ConnectionGuard")
    private let isStopped = Atomic<Bool>(false)

    init(limits: Limits) {
        self.limits = limits
        if limits.headerTimeout > .zero || limits.bodyTimeout > .zero { scheduleSweep() }
    }

    /// Stops the sweep; waits for a running one to finish.
    func stop() {
        isStopped.store(true, ordering: .relaxed)
        queue.sync {}
    }

    private func scheduleSweep() {
        queue.asyncAfter(deadline: .now(advancedBy: Self.sweepInterval)) { [weak self] in
            guard let self, !self.isStopped.load(ordering: .relaxed) else { return }
            self.sweep()
            self.scheduleSweep()
        }
    }

    /// Whether a new connection from `client` may be accepted (libmicrohttpd's accept policy). Two
    /// connections of one client accepted at the same moment on two threads can both pass: a client
    /// can exceed its limit by the number of threads minus one.
    func admits(_ client: ClientAddress?) -> Bool {
        let verdict = state.withLock { state -> Int in
            if state.records.count >= limits.total { return 1 }
            if let client, limits.perClient > 0, state.perClient[client, default: 0] >= limits.perClient { return 2 }
            return 0
        }
        switch verdict {
        case 1: refusedTotal.add(1, ordering: .relaxed)
        case 2: refusedPerClient.add(1, ordering: .relaxed)
        default: return true
        }
        return false
    }

    /// A connection was accepted.
    func opened(_ record: ConnectionRecord) {
        state.withLock { state in
            state.records[ObjectIdentifier(record)] = record
            state.perClient[record.client, default: 0] += 1
        }
    }

    /// A connection is about to be closed (its socket is still open).
    func closed(_ record: ConnectionRecord) {
        state.withLock { state in
            guard state.records.removeValue(forKey: ObjectIdentifier(record)) != nil else { return }
            let remaining = state.perClient[record.client, default: 1] - 1
            state.perClient[record.client] = remaining > 0 ? remaining : nil
        }
    }

    /// The counts so far.
    var statistics: HTTPConnectionStatistics {
        var statistics = HTTPConnectionStatistics()
        statistics.open = state.withLock { $0.records.count }
        statistics.limit = limits.total
        statistics.refusedPerClientLimit = refusedPerClient.load(ordering: .relaxed)
        statistics.refusedConnectionLimit = refusedTotal.load(ordering: .relaxed)
        statistics.headerTimeouts = headerTimeouts.load(ordering: .relaxed)
        statistics.bodyTimeouts = bodyTimeouts.load(ordering: .relaxed)
        return statistics
    }

    /// What the sweep knows of one connection's current phase.
    private struct Watch {
        /// The phase word it belongs to (a new phase starts a new watch).
        var word: UInt64
        /// The socket's received-byte count when the phase began (0 for a new connection; taken by the
        /// first sweep of the phase otherwise).
        var receivedAtStart: UInt64?
        /// When bytes of a head were first seen.
        var firstData: Int64?
    }

    /// The sweep's watches, by connection; only the sweep touches them.
    private let watches = Mutex<[ObjectIdentifier: Watch]>([:])

    /// Cuts off the connections past a deadline.
    private func sweep() {
        let now = ConnectionRecord.now()
        let (records, lastSweep) = state.withLock { state in
            defer { state.lastSweep = now }
            return (Array(state.records.values), state.lastSweep)
        }
        let headerTimeout = Int64(limits.headerTimeout / .milliseconds(1))
        let bodyTimeout = Int64(limits.bodyTimeout / .milliseconds(1))
        var overdue: [(record: ConnectionRecord, word: UInt64, isBody: Bool)] = []
        watches.withLock { watches in
            var next: [ObjectIdentifier: Watch] = [:]
            for record in records {
                let (phase, since, word) = record.phase
                var watch =
                    watches[ObjectIdentifier(record)].flatMap { $0.word == word ? $0 : nil }
                    ?? Watch(word: word, receivedAtStart: phase == .waitingOnNewConnection ? 0 : nil, firstData: nil)
                switch phase {
                case .answering:
                    break
                case .receivingBody:
                    if bodyTimeout > 0 && now - since >= bodyTimeout { overdue.append((record, word, true)) }
                case .waitingOnNewConnection, .waitingAfterRequest:
                    if watch.firstData == nil, headerTimeout > 0, let received = record.receivedBytes() {
                        if let start = watch.receivedAtStart {
                            // Bytes first seen now arrived after the previous sweep.
                            if received > start { watch.firstData = max(since, lastSweep) }
                        } else {
                            // The first sweep of the phase: what has arrived so far is the previous request's.
                            watch.receivedAtStart = received
                        }
                    }
                    if let first = watch.firstData, now - first >= headerTimeout {
                        overdue.append((record, word, false))
                    }
                }
                next[ObjectIdentifier(record)] = watch
            }
            watches = next
        }
        for (record, word, isBody) in overdue {
            // Under the lock: a registered connection's socket is still open, so this cannot reach
            // another connection that reuses the descriptor number. A connection that moved on since
            // (its head or body completed) is left alone.
            state.withLock { state in
                guard state.records[ObjectIdentifier(record)] != nil, record.phaseWord == word else { return }
                record.cutOff {
                    if isBody {
                        bodyTimeouts.add(1, ordering: .relaxed)
                    } else {
                        headerTimeouts.add(1, ordering: .relaxed)
                    }
                }
            }
        }
    }
}

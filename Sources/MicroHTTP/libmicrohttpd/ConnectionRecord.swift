import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One open connection, from libmicrohttpd's "connection started" to "connection closed": its socket,
/// its client, and where its current request is, for ``ConnectionGuard``'s deadlines.
///
/// libmicrohttpd keeps it as the connection's socket context; the request contexts of the connection
/// move it from phase to phase (on libmicrohttpd's thread for the connection), and the guard's sweep
/// reads it (on its own queue).
final class ConnectionRecord: Sendable {
    /// Where the connection's current request is.
    enum Phase: Sendable {
        /// Between requests, or receiving a request head: since `since`. `receivedAtStart` is the
        /// socket's count of received bytes when the phase began, when known (0 for a new connection;
        /// taken by the first sweep otherwise); `firstData` is when more bytes were first seen.
        case waitingForHead(
            since: ContinuousClock.Instant,
            receivedAtStart: UInt64?,
            firstData: ContinuousClock.Instant?
        )
        /// The head is complete; the body is arriving since `since`.
        case receivingBody(since: ContinuousClock.Instant)
        /// The request is being answered (a handler, a deferred answer or a stream): no deadline.
        case answering
    }

    let socket: Int32
    let client: ClientAddress
    private let phase: Mutex<Phase>
    private let isCutOff = Atomic<Bool>(false)

    init(socket: Int32, client: ClientAddress, now: ContinuousClock.Instant) {
        self.socket = socket
        self.client = client
        self.phase = Mutex(.waitingForHead(since: now, receivedAtStart: 0, firstData: nil))
    }

    /// The request's head is complete (the first access-handler call).
    func headReceived() {
        let now = ContinuousClock.now
        phase.withLock { $0 = .receivingBody(since: now) }
    }

    /// The request is complete and is being answered.
    func bodyReceived() {
        phase.withLock { $0 = .answering }
    }

    /// The request is over; the connection waits for the next one.
    func requestCompleted() {
        let now = ContinuousClock.now
        phase.withLock { $0 = .waitingForHead(since: now, receivedAtStart: nil, firstData: nil) }
    }

    /// How long the current head or body has been arriving, as of `now` (`lastSweep` is when the
    /// previous sweep ran: bytes first seen now arrived after it). `nil` while nothing is arriving.
    func arrival(
        now: ContinuousClock.Instant,
        lastSweep: ContinuousClock.Instant
    ) -> (isBody: Bool, duration: Duration)? {
        let current = phase.withLock { $0 }
        switch current {
        case .answering:
            return nil
        case .receivingBody(let since):
            return (true, now - since)
        case .waitingForHead(let since, let receivedAtStart, let firstData):
            if let firstData { return (false, now - firstData) }
            guard let received = receivedBytes() else { return nil }
            guard let receivedAtStart else {
                // The first sweep of this phase: what has arrived so far belongs to the previous request.
                update(since: since) { .waitingForHead(since: since, receivedAtStart: received, firstData: nil) }
                return nil
            }
            guard received > receivedAtStart else { return nil }
            let first = max(since, lastSweep)
            update(since: since) { .waitingForHead(since: since, receivedAtStart: receivedAtStart, firstData: first) }
            return (false, now - first)
        }
    }

    /// Replaces the phase with `next()` if it is still the waiting phase that began at `since`.
    private func update(since: ContinuousClock.Instant, _ next: () -> Phase) {
        phase.withLock { phase in
            if case .waitingForHead(let current, _, _) = phase, current == since { phase = next() }
        }
    }

    /// The bytes the socket has received so far (`tcpi_bytes_received` of `TCP_INFO`), or `nil`.
    private func receivedBytes() -> UInt64? {
        // struct tcp_info of linux/tcp.h: tcpi_bytes_received is the u64 at offset 128 (Linux ≥ 4.1).
        var info = [UInt8](repeating: 0, count: 256)
        var length = socklen_t(info.count)
        let result = info.withUnsafeMutableBytes { buffer in
            getsockopt(socket, Int32(IPPROTO_TCP), TCP_INFO, buffer.baseAddress, &length)
        }
        guard result == 0, length >= 136 else { return nil }
        return info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 128, as: UInt64.self) }
    }

    /// Closes the connection from outside libmicrohttpd: it sees the end of the stream and closes it.
    /// Call only while the connection is registered (its socket is still open). Returns `false` when
    /// it was cut off already.
    func cutOff() -> Bool {
        guard !isCutOff.exchange(true, ordering: .relaxed) else { return false }
        _ = shutdown(socket, Int32(SHUT_RDWR))
        return true
    }
}

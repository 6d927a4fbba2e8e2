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
/// move it from phase to phase (on libmicrohttpd's thread for the connection: one atomic store each),
/// and the guard's sweep reads it.
final class ConnectionRecord: Sendable {
    /// Where the connection's current request is.
    enum Phase: UInt64 {
        /// A new connection, waiting for its first request head: no byte has been counted yet.
        case waitingOnNewConnection = 0
        /// Between requests, or receiving a request head, on a connection that served requests.
        case waitingAfterRequest = 1
        /// The head is complete; the body is arriving.
        case receivingBody = 2
        /// The request is being answered (a handler, a deferred answer or a stream): no deadline.
        case answering = 3
    }

    let socket: Int32
    let client: ClientAddress
    /// The phase in the top 2 bits, a transition count in the next 14 (so that the word changes with
    /// every transition, even two within one clock tick), the coarse monotonic time the phase began in
    /// the low 48 (milliseconds). Only libmicrohttpd's thread for the connection writes it.
    private let state: Atomic<UInt64>
    private let isCutOff = Atomic<Bool>(false)

    /// The certificate its TLS handshake uses (`nil` for plain HTTP).
    let tlsIdentity: TLSIdentity?

    init(socket: Int32, client: ClientAddress, tlsIdentity: TLSIdentity? = nil) {
        self.socket = socket
        self.client = client
        self.tlsIdentity = tlsIdentity
        self.state = Atomic(Self.word(.waitingOnNewConnection, transition: 0, since: Self.now()))
    }

    /// The request's head is complete (the first access-handler call): its body, if any, is arriving
    /// (a request without one is answered right after).
    func headReceived() {
        enter(.receivingBody, since: Self.now())
    }

    /// The request is complete and is being answered.
    func bodyReceived() {
        enter(.answering, since: 0)
    }

    /// The request is over; the connection waits for the next one.
    func requestCompleted() {
        enter(.waitingAfterRequest, since: Self.now())
    }

    /// The current phase, when it began, and the raw word (which changes with every transition).
    var phase: (phase: Phase, since: Int64, word: UInt64) {
        let word = state.load(ordering: .relaxed)
        return (Phase(rawValue: word >> 62)!, Int64(word & Self.sinceMask), word)
    }

    /// The raw word of the current phase.
    var phaseWord: UInt64 { state.load(ordering: .relaxed) }

    private func enter(_ phase: Phase, since: Int64) {
        let transition = (state.load(ordering: .relaxed) >> 48 &+ 1) & Self.transitionMask
        state.store(Self.word(phase, transition: transition, since: since), ordering: .relaxed)
    }

    /// The bytes the socket has received so far (`tcpi_bytes_received` of `TCP_INFO`), or `nil`.
    func receivedBytes() -> UInt64? {
        // struct tcp_info of linux/tcp.h: tcpi_bytes_received is the u64 at offset 128 (Linux ≥ 4.1).
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 8) { buffer in
            var length = socklen_t(buffer.count)
            guard getsockopt(socket, Int32(IPPROTO_TCP), TCP_INFO, buffer.baseAddress, &length) == 0,
                length >= 136
            else { return nil }
            return buffer.loadUnaligned(fromByteOffset: 128, as: UInt64.self)
        }
    }

    /// Closes the connection from outside libmicrohttpd: it sees the end of the stream and closes it.
    /// Call only while the connection is registered (its socket is still open). Does nothing when it
    /// was cut off already; otherwise runs `first` (to count it) before the client can see the close.
    func cutOff(first: () -> Void) {
        guard !isCutOff.exchange(true, ordering: .relaxed) else { return }
        first()
        _ = shutdown(socket, Int32(SHUT_RDWR))
    }

    /// Milliseconds of the coarse monotonic clock (a few milliseconds' resolution, a few nanoseconds
    /// to read): what the deadlines are measured with.
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    private static let sinceMask: UInt64 = 1 << 48 - 1
    private static let transitionMask: UInt64 = 1 << 14 - 1

    private static func word(_ phase: Phase, transition: UInt64, since: Int64) -> UInt64 {
        phase.rawValue << 62 | transition << 48 | UInt64(max(0, since)) & sinceMask
    }
}

import Synchronization

/// The connection side of a stream, implemented by the server (suspends and resumes the connection).
///
/// Both methods are called with the writer's lock held, which keeps suspend and resume strictly ordered.
protocol HTTPStreamTransport: Sendable {
    /// Called from inside the content reader when there is nothing to send: stop polling this connection.
    func park()
    /// Called (from any thread) when data, the end of the stream, or a disconnect arrives while parked.
    func unpark()
}

/// Writes the body of a streaming response; handed to ``HTTPStreamConfiguration/start``.
///
/// All methods are thread-safe and never block on the network: `write(_:)` appends to a pending
/// buffer that the server drains as the client reads.
///
/// ```swift
/// HTTPStreamConfiguration { writer in
///     writer.onClose { hub.remove(writer) }
///     hub.add(writer)
/// }
/// // later, from any thread:
/// if !writer.write(Array("data: hello\n\n".utf8)) { writer.finish() }
/// ```
///
/// The stream closes when ``finish()`` is called (pending bytes are still sent, then the chunked body
/// ends), when the client disconnects (noticed promptly even while the stream is idle), when the
/// connection fails or times out while sending, or when the server shuts down. ``onClose(_:)`` runs once in
/// every case.
public final class HTTPStreamWriter: Sendable {
    private struct State {
        var pending: [UInt8] = []
        var readIndex = 0
        /// Bytes ever written, ever handed to the connection, and known written to the socket:
        /// libmicrohttpd asks for more only once it has written all it was given, so each drain
        /// confirms the bytes handed over before it.
        var writtenTotal = 0
        var drainedTotal = 0
        var confirmedTotal = 0
        /// Where each message not yet confirmed ends (in `writtenTotal` terms), from `firstUnconfirmed`.
        var messageEnds: [Int] = []
        var firstUnconfirmed = 0
        /// After ``HTTPStreamWriter/abort(whenInFlightLost:)``: the messages handed over but not yet
        /// confirmed, and what to tell if they never are.
        var inFlightAtAbort: (count: Int, report: @Sendable (Int) -> Void)?
        var isClosed = false
        var discardPending = false
        var isParked = false
        var isDetached = false
        var onClose: (@Sendable () -> Void)?
    }

    /// Result of one content-reader call.
    enum DrainResult {
        /// This many bytes were copied.
        case bytes(Int)
        /// Nothing to send; the connection has been parked.
        case parked
        /// The stream ended normally.
        case endOfStream
        /// The stream ended abnormally (the client is gone); close the connection.
        case abort
    }

    /// The most bytes that may wait to be sent.
    public let bufferLimit: Int

    private let state = Mutex(State())
    private let transport: any HTTPStreamTransport

    init(bufferLimit: Int, transport: any HTTPStreamTransport) {
        self.bufferLimit = max(0, bufferLimit)
        self.transport = transport
    }

    /// Queues bytes for sending.
    ///
    /// - Parameters:
    ///   - bytes: What to send.
    ///   - isMessage: Whether the bytes are one message for the count ``abort()`` returns (`false` for
    ///     padding, comments or keep-alives).
    /// - Returns: `false` if the stream is closed, or if the pending bytes would exceed ``bufferLimit``
    ///   (nothing is queued then; the client is not keeping up and the caller usually calls ``abort()``).
    @discardableResult
    public func write(_ bytes: [UInt8], isMessage: Bool = true) -> Bool {
        guard !bytes.isEmpty else { return !isClosed }
        return state.withLock { state in
            guard !state.isClosed else { return false }
            let pendingCount = state.pending.count - state.readIndex
            guard pendingCount + bytes.count <= bufferLimit else { return false }
            state.pending.append(contentsOf: bytes)
            state.writtenTotal += bytes.count
            if isMessage { state.messageEnds.append(state.writtenTotal) }
            if state.isParked {
                state.isParked = false
                transport.unpark()
            }
            return true
        }
    }

    /// Queues the UTF-8 bytes of a string as one message; see ``write(_:isMessage:)``.
    @discardableResult
    public func write(_ text: String) -> Bool {
        write(Array(text.utf8))
    }

    /// Ends the stream after the pending bytes have been sent. Idempotent.
    public func finish() {
        close(discardingPending: false)
    }

    /// Closes the stream now, dropping what has not been sent: the connection is closed as soon as the
    /// server touches it again (when the client makes room, or at the connection timeout if it never
    /// reads). For a consumer too slow to keep up. Idempotent.
    ///
    /// Messages (writes with `isMessage`) that had been handed to the connection but not yet confirmed
    /// written to the socket are delivered if the client reads them before the connection closes;
    /// `whenInFlightLost` is called once, when the connection ends, with their number if they were not.
    ///
    /// - Parameter whenInFlightLost: Told how many handed-over messages never reached the socket.
    /// - Returns: How many messages this call dropped before they were handed to the connection in
    ///   full; `nil` when the stream was closed already.
    @discardableResult
    public func abort(whenInFlightLost: @escaping @Sendable (Int) -> Void = { _ in }) -> Int? {
        // One critical section: a concurrent finish or client hangup either closes the stream first
        // (this returns nil) or finds it closed by this call, so no message is counted twice or lost.
        let (dropped, callback) = state.withLock { state -> (Int?, (@Sendable () -> Void)?) in
            guard !state.isClosed else { return (nil, nil) }
            let unconfirmed = state.messageEnds[state.firstUnconfirmed...]
            let notHandedOver = unconfirmed.count { $0 > state.drainedTotal }
            state.inFlightAtAbort = (unconfirmed.count - notHandedOver, whenInFlightLost)
            return (notHandedOver, closeLocked(&state, discardingPending: true))
        }
        callback?()
        return dropped
    }

    /// Whether the stream is closed (finished, client gone, connection failed, or server shut down).
    public var isClosed: Bool {
        state.withLock { $0.isClosed }
    }

    /// The number of bytes written but not yet handed to the connection.
    public var pendingByteCount: Int {
        state.withLock { $0.pending.count - $0.readIndex }
    }

    /// Registers a callback that runs once when the stream closes, for whatever reason.
    ///
    /// If the stream is already closed the callback runs immediately, on the calling thread. Otherwise it
    /// runs on the thread that closes the stream (a server thread, or the caller of ``finish()``); it must
    /// not block. A later registration replaces an earlier one that has not run yet.
    public func onClose(_ callback: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.isClosed { return true }
            state.onClose = callback
            return false
        }
        if runNow { callback() }
    }

    // MARK: - Server side

    /// Copies up to `maximum` pending bytes through `copy`, or parks the connection when there is nothing
    /// to send. Called only by the content reader.
    func drain(maximum: Int, _ copy: (UnsafeRawBufferPointer) -> Void) -> DrainResult {
        state.withLock { state in
            Self.confirmHandedOver(&state)
            let available = state.pending.count - state.readIndex
            if available > 0 && !state.discardPending {
                let count = min(available, maximum)
                state.pending.withUnsafeBytes { all in
                    copy(UnsafeRawBufferPointer(rebasing: all[state.readIndex..<(state.readIndex + count)]))
                }
                state.readIndex += count
                state.drainedTotal += count
                if state.readIndex == state.pending.count {
                    state.pending.removeAll(keepingCapacity: state.pending.capacity <= 64 * 1024)
                    state.readIndex = 0
                } else if state.readIndex >= 64 * 1024 && state.readIndex * 2 >= state.pending.count {
                    state.pending.removeFirst(state.readIndex)
                    state.readIndex = 0
                }
                return .bytes(count)
            }
            if state.isClosed {
                return state.discardPending ? .abort : .endOfStream
            }
            state.isParked = true
            transport.park()
            return .parked
        }
    }

    /// Everything handed over before this drain has been written (see `State.confirmedTotal`).
    private static func confirmHandedOver(_ state: inout State) {
        state.confirmedTotal = state.drainedTotal
        while state.firstUnconfirmed < state.messageEnds.count,
            state.messageEnds[state.firstUnconfirmed] <= state.confirmedTotal
        {
            state.firstUnconfirmed += 1
        }
        if state.firstUnconfirmed >= 1024 || state.firstUnconfirmed == state.messageEnds.count {
            state.messageEnds.removeFirst(state.firstUnconfirmed)
            state.firstUnconfirmed = 0
        }
        // Messages in flight at an abort were written after all.
        if state.inFlightAtAbort != nil { state.inFlightAtAbort?.count = 0 }
    }

    /// The client hung up (seen while parked): close without sending the rest.
    func clientDisconnected() {
        close(discardingPending: true)
    }

    /// The server is done with the connection (response freed): nothing can be sent any more.
    func connectionEnded() {
        let (callback, lost) = state.withLock { state -> ((@Sendable () -> Void)?, (@Sendable () -> Void)?) in
            state.isDetached = true
            state.isParked = false
            state.pending = []
            state.readIndex = 0
            var lost: (@Sendable () -> Void)?
            if let inFlight = state.inFlightAtAbort, inFlight.count > 0 {
                lost = { inFlight.report(inFlight.count) }
            }
            state.inFlightAtAbort = nil
            return (markClosed(&state, discardingPending: true), lost)
        }
        lost?()
        callback?()
    }

    private func close(discardingPending: Bool) {
        let callback = state.withLock { closeLocked(&$0, discardingPending: discardingPending) }
        callback?()
    }

    /// Marks the state closed and wakes a parked connection; returns the close callback if this call
    /// closed it.
    private func closeLocked(_ state: inout State, discardingPending: Bool) -> (@Sendable () -> Void)? {
        let callback = markClosed(&state, discardingPending: discardingPending)
        if state.isParked && !state.isDetached {
            state.isParked = false
            transport.unpark()
        }
        return callback
    }

    /// Marks the state closed; returns the close callback if this call closed it.
    private func markClosed(_ state: inout State, discardingPending: Bool) -> (@Sendable () -> Void)? {
        if discardingPending {
            state.discardPending = true
        }
        guard !state.isClosed else { return nil }
        state.isClosed = true
        let callback = state.onClose
        state.onClose = nil
        return callback
    }
}

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
    /// - Returns: `false` if the stream is closed, or if the pending bytes would exceed ``bufferLimit``
    ///   (nothing is queued then; the client is not keeping up and the caller usually calls ``finish()``).
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return !isClosed }
        return state.withLock { state in
            guard !state.isClosed else { return false }
            let pendingCount = state.pending.count - state.readIndex
            guard pendingCount + bytes.count <= bufferLimit else { return false }
            state.pending.append(contentsOf: bytes)
            if state.isParked {
                state.isParked = false
                transport.unpark()
            }
            return true
        }
    }

    /// Queues the UTF-8 bytes of a string; see `write(_:)`.
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
    public func abort() {
        close(discardingPending: true)
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
            let available = state.pending.count - state.readIndex
            if available > 0 && !state.discardPending {
                let count = min(available, maximum)
                state.pending.withUnsafeBytes { all in
                    copy(UnsafeRawBufferPointer(rebasing: all[state.readIndex..<(state.readIndex + count)]))
                }
                state.readIndex += count
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

    /// The client hung up (seen while parked): close without sending the rest.
    func clientDisconnected() {
        close(discardingPending: true)
    }

    /// The server is done with the connection (response freed): nothing can be sent any more.
    func connectionEnded() {
        let callback = state.withLock { state -> (@Sendable () -> Void)? in
            state.isDetached = true
            state.isParked = false
            state.pending = []
            state.readIndex = 0
            return markClosed(&state, discardingPending: true)
        }
        callback?()
    }

    private func close(discardingPending: Bool) {
        let callback = state.withLock { state -> (@Sendable () -> Void)? in
            let callback = markClosed(&state, discardingPending: discardingPending)
            if state.isParked && !state.isDetached {
                state.isParked = false
                transport.unpark()
            }
            return callback
        }
        callback?()
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

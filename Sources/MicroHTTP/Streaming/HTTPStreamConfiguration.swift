/// Describes a streaming response body (for example Server-Sent Events).
///
/// The server sends the status and headers, then calls ``start`` once with a fresh ``HTTPStreamWriter``
/// (synchronously, on the pool thread that ran the handler, before the first byte is sent). `start` must
/// not block: hand the writer to whatever produces the data and return. Data written later, from any
/// thread, is sent as HTTP/1.1 chunks.
public struct HTTPStreamConfiguration: Sendable {
    /// The most bytes that may wait to be sent; `HTTPStreamWriter.write(_:)` returns `false`
    /// instead of growing beyond it (a slow or stalled client).
    public var bufferLimit: Int
    /// The kernel send buffer of the stream's socket (`SO_SNDBUF`; Linux doubles it), so that bytes
    /// accepted by the kernel but not read by the client stay few; `nil` keeps the system's default
    /// (which grows to megabytes).
    public var socketSendBufferBytes: Int?
    /// Receives the writer once the response has been queued.
    public var start: @Sendable (HTTPStreamWriter) -> Void

    /// Creates a stream configuration.
    ///
    /// - Parameters:
    ///   - bufferLimit: Pending-bytes limit; default 1 MiB.
    ///   - socketSendBufferBytes: The socket's kernel send buffer; default `nil` (the system's).
    ///   - start: Receives the writer; must not block.
    public init(
        bufferLimit: Int = 1 << 20,
        socketSendBufferBytes: Int? = nil,
        start: @escaping @Sendable (HTTPStreamWriter) -> Void
    ) {
        self.bufferLimit = bufferLimit
        self.socketSendBufferBytes = socketSendBufferBytes
        self.start = start
    }
}

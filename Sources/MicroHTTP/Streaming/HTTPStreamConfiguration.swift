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
    /// Receives the writer once the response has been queued.
    public var start: @Sendable (HTTPStreamWriter) -> Void

    /// Creates a stream configuration.
    ///
    /// - Parameters:
    ///   - bufferLimit: Pending-bytes limit; default 1 MiB.
    ///   - start: Receives the writer; must not block.
    public init(bufferLimit: Int = 1 << 20, start: @escaping @Sendable (HTTPStreamWriter) -> Void) {
        self.bufferLimit = bufferLimit
        self.start = start
    }
}

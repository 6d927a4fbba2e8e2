/// An HTTP response produced by an ``HTTPHandler``.
///
/// libmicrohttpd adds `Date`, `Content-Length` (or `Transfer-Encoding: chunked` for streams) and manages
/// `Connection` itself; do not set `Content-Length` or `Transfer-Encoding` (such headers are dropped and
/// reported to ``HTTPServerConfiguration/errorLog``). `Connection: close` is honoured.
///
/// ```swift
/// var response = HTTPResponse(status: 200, headers: [("Content-Type", "text/plain")], body: Array(text.utf8))
/// response.compressIfAccepted = true
/// ```
///
/// A response can also be given later, without holding a worker thread while waiting (see
/// ``HTTPDeferredResponse``): the outer response only carries the deferred body, and the response passed
/// to ``HTTPResponder/respond(_:)`` is the one sent.
///
/// ```swift
/// HTTPResponse(deferred: { responder in
///     committer.afterNextCommit { responder.respond(.json(Array(#"{"ok":true}"#.utf8))) }
/// })
/// ```
public struct HTTPResponse: Sendable {
    /// The body of a response.
    public enum Body: Sendable {
        /// A complete body, sent with `Content-Length`.
        case bytes([UInt8])
        /// A long-lived body written over time (for example Server-Sent Events), sent chunked.
        case stream(HTTPStreamConfiguration)
        /// An answer given later through an ``HTTPResponder``; the status, headers and
        /// ``HTTPResponse/compressIfAccepted`` of the response carrying this body are ignored.
        case deferred(HTTPDeferredResponse)
    }

    /// Bodies smaller than this many bytes are never compressed, even with ``compressIfAccepted``.
    public static let compressionThreshold = 1024

    /// The status code (100...999; anything else is replaced by a 500 error).
    public var status: Int
    /// Response headers in order. Names are case-insensitive; repeats are sent as separate lines.
    public var headers: [(name: String, value: String)]
    /// The body.
    public var body: Body
    /// Gzip the body when the request accepts gzip and the body has at least ``compressionThreshold``
    /// bytes; then `Content-Encoding: gzip` is added. `Vary: Accept-Encoding` is added whenever this is
    /// `true` (the representation depends on the header). Ignored for streams and for the response that
    /// carries a deferred body (the response given to ``HTTPResponder/respond(_:)`` has its own).
    public var compressIfAccepted: Bool

    /// Creates a response with a complete body.
    ///
    /// - Parameters:
    ///   - status: The status code; default 200.
    ///   - headers: Headers, e.g. `[("Content-Type", "application/json")]`.
    ///   - body: The body bytes.
    ///   - compressIfAccepted: See ``compressIfAccepted``; default `false`.
    public init(
        status: Int = 200,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        compressIfAccepted: Bool = false
    ) {
        self.status = status
        self.headers = headers
        self.body = .bytes(body)
        self.compressIfAccepted = compressIfAccepted
    }

    /// Creates a streaming response; see ``HTTPStreamConfiguration``.
    ///
    /// ```swift
    /// HTTPResponse(
    ///     headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
    ///     stream: HTTPStreamConfiguration { writer in hub.add(writer) }
    /// )
    /// ```
    public init(
        status: Int = 200,
        headers: [(name: String, value: String)] = [],
        stream: HTTPStreamConfiguration
    ) {
        self.status = status
        self.headers = headers
        self.body = .stream(stream)
        self.compressIfAccepted = false
    }

    /// Creates a response whose answer is given later through an ``HTTPResponder``; see
    /// ``HTTPDeferredResponse``.
    ///
    /// ```swift
    /// HTTPResponse(deferred: { responder in
    ///     writer.enqueue(change, onCommit: { responder.respond(.json(body)) })
    /// })
    /// ```
    ///
    /// - Parameter deferred: Receives the responder once the connection is suspended; must not block.
    public init(deferred start: @escaping @Sendable (HTTPResponder) -> Void) {
        self.status = 200
        self.headers = []
        self.body = .deferred(HTTPDeferredResponse(start))
        self.compressIfAccepted = false
    }

    /// A text response (`text/plain; charset=utf-8` unless another content type is given).
    public static func text(
        _ text: String,
        status: Int = 200,
        contentType: String = "text/plain; charset=utf-8"
    ) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    /// A JSON response from already-encoded bytes (`application/json; charset=utf-8`).
    public static func json(_ body: [UInt8], status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json; charset=utf-8")], body: body)
    }
}

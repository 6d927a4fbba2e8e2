/// Answers HTTP requests.
///
/// The handler runs synchronously on one of libmicrohttpd's pool threads, possibly on several threads at
/// once, so it must be thread-safe. It must not block for long (every blocked call holds a pool thread and
/// all the connections that thread serves). It must not call ``HTTPServer/shutdown(gracePeriod:)``.
///
/// ```swift
/// struct Hello: HTTPHandler {
///     func handle(_ request: HTTPRequest) -> HTTPResponse {
///         .text("hello \(request.path)\n")
///     }
/// }
/// ```
///
/// To answer only once something else has happened (for example once a background writer has committed
/// the change), return a deferred response instead of waiting: the connection is suspended, the pool
/// thread moves on, and the answer goes out when ``HTTPResponder/respond(_:)`` is called, from any thread.
/// Copy what the answer needs out of the request first (the request is not valid any more by then);
/// `Accept-Encoding` is remembered by the server for ``HTTPResponse/compressIfAccepted``.
///
/// ```swift
/// struct Put: HTTPHandler {
///     let writer: CommitWriter
///
///     func handle(_ request: HTTPRequest) -> HTTPResponse {
///         let change = Change(request.body)
///         return HTTPResponse(deferred: { responder in
///             writer.enqueue(change) { committed in  // called later, on the writer's thread
///                 if committed {
///                     responder.respond(.json(Array(#"{"ok":true}"#.utf8)))
///                 } else {
///                     responder.respond(.text("not committed\n", status: 503))
///                 }
///             }
///         })
///     }
/// }
/// ```
public protocol HTTPHandler: Sendable {
    /// Produces the response for one request.
    ///
    /// - Parameter request: The request; valid only during this call.
    /// - Returns: The response to send, or a deferred one (``HTTPResponse/init(deferred:)``) to answer later.
    func handle(_ request: HTTPRequest) -> HTTPResponse
}

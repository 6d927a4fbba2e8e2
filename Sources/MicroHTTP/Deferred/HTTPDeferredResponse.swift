/// Describes a response that is produced later, without holding a worker thread while waiting (for example
/// until a background writer has committed the request's change).
///
/// When a handler returns a deferred body, the server suspends the connection (libmicrohttpd stops polling
/// it; no thread is blocked), then calls ``start`` once with a fresh ``HTTPResponder``: synchronously, on the
/// pool thread that ran the handler, before that thread moves on. `start` must not block: hand the
/// responder to whatever produces the answer and return. Calling ``HTTPResponder/respond(_:)`` later, from
/// any thread (or right away, from inside `start`), sends the response.
///
/// ```swift
/// HTTPResponse(deferred: { responder in
///     writer.enqueue(change) { committed in
///         responder.respond(committed ? .json(body) : .text("not committed\n", status: 503))
///     }
/// })
/// ```
///
/// A deferred request counts as in flight until it has been answered and sent:
/// ``HTTPServer/shutdown(gracePeriod:)`` waits for it, and answers it with a 503 `shutting_down` error
/// once the grace period is over. Until then nothing times it out (libmicrohttpd does not time out
/// suspended connections, nor notice that their client has gone), so every responder must eventually be
/// answered.
public struct HTTPDeferredResponse: Sendable {
    /// Receives the responder once the connection is suspended.
    let start: @Sendable (HTTPResponder) -> Void

    /// Creates a deferred response.
    ///
    /// - Parameter start: Receives the responder of this request; must not block.
    public init(_ start: @escaping @Sendable (HTTPResponder) -> Void) {
        self.start = start
    }
}

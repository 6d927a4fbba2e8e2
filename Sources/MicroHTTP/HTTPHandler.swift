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
public protocol HTTPHandler: Sendable {
    /// Produces the response for one request.
    ///
    /// - Parameter request: The request; valid only during this call.
    /// - Returns: The response to send.
    func handle(_ request: HTTPRequest) -> HTTPResponse
}

/// One request, from its request line to its completion: libmicrohttpd's per-request pointer
/// (`*con_cls`) points to it.
///
/// It is created by the URI-log callback, the first callback libmicrohttpd makes for a request, and
/// released when libmicrohttpd reports the request completed (which it does for every request that
/// reached the URI-log callback, answered or not). libmicrohttpd calls back for one connection on one
/// thread at a time, so the state needs no lock.
final class RequestContext {
    /// Where the request is.
    enum State {
        /// The request line is read; the headers are not (the access handler has not been called).
        case readingHead
        /// The headers are read; the body, if any, is being collected.
        case readingBody([UInt8])
        /// The body is larger than allowed: this many bytes were read and dropped; the 413 goes out
        /// once the body is complete.
        case discardingBody(received: Int)
        /// The handler is running: the request's headers and query arguments can be read.
        case handling
        /// A complete response is queued (the handler's, or the server's own error); any further
        /// upload data is consumed and ignored.
        case answered
        /// A streaming response is queued; its ``HTTPStreamWriter`` feeds it from now on.
        case streaming
        /// The connection is suspended until ``DeferredRequest/responder`` is answered; then the
        /// answer is queued and the request stays in this state until it completes.
        case deferred(DeferredRequest)
    }

    /// What a deferred request keeps from its suspension to its completion.
    struct DeferredRequest {
        let responder: HTTPResponder
        /// The request's key in ``DeferredRegistry``.
        let token: UInt64
        /// The request's `Accept-Encoding`, read while the request could still be read.
        let acceptEncoding: String?
    }

    let connection: MHDConnection
    /// The length of the raw request target as a C string, measured before libmicrohttpd split and
    /// decoded it: shorter than the target when the target holds a NUL byte (`nil` if unknown).
    let rawTargetLength: Int?
    /// The connection's record, which the request moves through its phases for the deadlines.
    let record: ConnectionRecord?
    /// Whether the query had more arguments than allowed (it was dropped; the answer is 414).
    var hasTooManyQueryParameters = false
    var state = State.readingHead

    init(connection: MHDConnection, rawTargetLength: Int?, record: ConnectionRecord?) {
        self.connection = connection
        self.rawTargetLength = rawTargetLength
        self.record = record
    }

    /// Whether the handler is running, so that ``HTTPRequest`` lookups are allowed.
    var isHandling: Bool {
        if case .handling = state { return true }
        return false
    }

    /// Whether the request counts in ``ServerContext/inFlight``: from the first access-handler call
    /// (its headers are complete) to its completion.
    var isInFlight: Bool {
        if case .readingHead = state { return false }
        return true
    }

    /// The deferred request, if the handler deferred its answer.
    var deferredRequest: DeferredRequest? {
        if case .deferred(let request) = state { return request }
        return nil
    }
}

import Synchronization

/// The connection side of a deferred response, implemented by the server.
///
/// Both methods are called with the responder's lock held, which keeps suspend and resume strictly
/// ordered, and each at most once: `suspend()` first, from the access handler, then `resume()`.
protocol HTTPResponderTransport: Sendable {
    /// Stops libmicrohttpd from processing the connection until ``resume()``.
    func suspend()
    /// Makes libmicrohttpd process the connection again (from any thread); it then calls the access handler
    /// again for this request, which sends the stored response.
    func resume()
}

/// Completes one deferred request; handed to ``HTTPDeferredResponse/start``.
///
/// Thread-safe: ``respond(_:)`` may be called from any thread, including synchronously from inside `start`.
///
/// ```swift
/// HTTPResponse(deferred: { responder in
///     commitQueue.append { success in
///         if success {
///             responder.respond(.json(Array(#"{"ok":true}"#.utf8)))
///         } else {
///             responder.respond(.text("not committed\n", status: 503))
///         }
///     }
/// })
/// ```
public final class HTTPResponder: Sendable {
    private enum Phase {
        /// Created; the connection is not suspended yet.
        case created
        /// The connection is suspended and waits for ``HTTPResponder/respond(_:)``.
        case waiting
        /// Answered and resumed; the access handler has not picked the response up yet.
        case answered(@Sendable () -> HTTPResponse)
        /// The access handler took the response.
        case delivered
        /// The connection is gone (request completed, or the server stopped): nothing can be sent.
        case ended
    }

    private let phase = Mutex(Phase.created)
    private let transport: any HTTPResponderTransport

    init(transport: any HTTPResponderTransport) {
        self.transport = transport
    }

    /// Sends `response` as the answer to the deferred request.
    ///
    /// The response must have a complete (`.bytes`) body; a stream or another deferred body is replaced by
    /// a 500 error (and reported to ``HTTPServerConfiguration/errorLog``). Everything that applies to a
    /// response returned by a handler applies here too: ``HTTPResponse/compressIfAccepted`` (negotiated
    /// with the request's `Accept-Encoding`), no body for `HEAD`, `Connection: close` while the server
    /// shuts down, 500 for an invalid status, keep-alive.
    ///
    /// Only the first call counts (the server's own 503 at the end of a shutdown counts as one). Later
    /// calls, and calls after the connection has ended, change nothing and return `false`.
    ///
    /// - Parameter response: The response to send.
    /// - Returns: `true` if this call's response will be sent; `false` if the request was already answered
    ///   or its connection has ended.
    @discardableResult
    public func respond(_ response: HTTPResponse) -> Bool {
        respond(building: { response })
    }

    /// Sends the response that `build` returns as the answer to the deferred request; see
    /// ``respond(_:)``. `build` runs once, later, on the server thread that sends the answer, so the
    /// caller's thread (a storage writer serving many requests, say) does not build responses.
    ///
    /// - Parameter build: Makes the response; must not block.
    /// - Returns: `true` if the response will be sent; `false` if the request was already answered or
    ///   its connection has ended (`build` never runs then).
    @discardableResult
    public func respond(building build: @escaping @Sendable () -> HTTPResponse) -> Bool {
        phase.withLock { phase in
            guard case .waiting = phase else { return false }
            phase = .answered(build)
            transport.resume()
            return true
        }
    }

    // MARK: - Server side

    /// Suspends the connection. Called once, by the access handler, before the responder is handed out.
    func suspend() {
        phase.withLock { phase in
            guard case .created = phase else { return }
            transport.suspend()
            phase = .waiting
        }
    }

    /// The response given by ``respond(_:)`` or ``respond(building:)``, once (built now, outside the
    /// lock); `nil` if there is none (or it was taken already).
    func takeResponse() -> HTTPResponse? {
        let build = phase.withLock { phase -> (@Sendable () -> HTTPResponse)? in
            guard case .answered(let build) = phase else { return nil }
            phase = .delivered
            return build
        }
        return build?()
    }

    /// The request has completed (or the server stopped): the connection must not be touched again.
    func connectionEnded() {
        phase.withLock { $0 = .ended }
    }
}

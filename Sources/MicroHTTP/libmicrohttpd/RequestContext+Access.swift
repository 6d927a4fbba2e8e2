internal import CMicroHTTPD

/// The arguments of one access-handler call (`MHD_AccessHandlerCallback`).
struct AccessCall {
    let url: UnsafePointer<CChar>?
    let method: UnsafePointer<CChar>?
    let version: UnsafePointer<CChar>?
    let uploadData: UnsafePointer<CChar>?
    let uploadDataSize: UnsafeMutablePointer<Int>
}

/// How many bytes beyond `maxBodySize` are read and dropped before the 413 is sent anyway.
private let bodyDiscardAllowance = 4 << 20

extension RequestContext {
    /// Handles one access-handler call for this request.
    ///
    /// libmicrohttpd calls the access handler first with the headers only (a response queued then would
    /// be an "early response" that loses keep-alive, so nothing is answered on that call except a body
    /// declared far too large), then once per chunk of body, then once with no upload data: that call
    /// runs the ``HTTPHandler``. A deferred answer suspends the connection; when the responder resumes
    /// it, libmicrohttpd repeats that last call, which then queues the answer.
    func process(_ call: AccessCall, server: ServerContext) -> MHD_Result {
        let chunkSize = call.uploadDataSize.pointee
        call.uploadDataSize.pointee = 0
        switch state {
        case .readingHead:
            server.requestStarted()
            record?.headReceived()
            return readHead(server: server)
        case .readingBody(var body):
            guard chunkSize > 0 else { return handle(call, body: body, server: server) }
            state = .answered  // releases the array, so that appending does not copy it
            guard body.count + chunkSize <= server.maxBodySize else {
                return bodyTooLarge(received: body.count + chunkSize, server: server)
            }
            body.append(contentsOf: UnsafeRawBufferPointer(start: call.uploadData, count: chunkSize))
            state = .readingBody(body)
            return .YES
        case .discardingBody(let received):
            guard chunkSize > 0 else {
                // The whole (too large) body has been read and dropped: the client is listening now.
                state = .answered
                return queueBodyTooLarge(server: server)
            }
            return bodyTooLarge(received: received + chunkSize, server: server)
        case .handling:
            server.log("MicroHTTP: access handler called again while the handler runs; closing the connection")
            return .NO
        case .answered, .streaming:
            return .YES
        case .deferred(let deferred):
            guard let response = deferred.responder.takeResponse() else {
                // Already taken: the earlier queueing did not happen (libmicrohttpd stopping). Close.
                if !server.isShuttingDown {
                    server.log("MicroHTTP: deferred request resumed without a response; closing the connection")
                }
                return .NO
            }
            return queueDeferredAnswer(response, acceptEncoding: deferred.acceptEncoding, server: server)
        }
    }

    /// The first call: headers only. Refuses a declared body that is too large (see
    /// ``bodyTooLarge(received:declared:server:)``), otherwise waits for the body.
    private func readHead(server: ServerContext) -> MHD_Result {
        guard let lengthText = connection.header("Content-Length") else {
            state = .readingBody([])
            return .YES
        }
        let declared = Int(lengthText) ?? 0
        guard declared <= server.maxBodySize else {
            let expectsContinue = connection.header("Expect")?.lowercased().contains("100-continue") ?? false
            if expectsContinue {
                // The client waits for "100 Continue" before sending the body: refuse now, it reads the
                // answer cleanly and sends nothing more.
                state = .answered
                return queueBodyTooLarge(server: server)
            }
            return bodyTooLarge(received: 0, declared: declared, server: server)
        }
        var body: [UInt8] = []
        // Capped: a declared length costs nothing to send, so it must not reserve much memory.
        if declared > 0 { body.reserveCapacity(min(declared, 64 * 1024)) }
        state = .readingBody(body)
        return .YES
    }

    /// Handles a body above `maxBodySize`.
    ///
    /// Answering while the client is still sending makes the server close a socket with unread data,
    /// which the kernel turns into a TCP reset that can destroy the 413 before the client reads it. So a
    /// moderately too large body is read and dropped, and the 413 goes out once the body is complete;
    /// past ``bodyDiscardAllowance`` (or a declared length that far above the limit) it is sent at once
    /// and the client may see a reset instead.
    private func bodyTooLarge(received: Int, declared: Int? = nil, server: ServerContext) -> MHD_Result {
        guard (declared ?? received) - server.maxBodySize <= bodyDiscardAllowance else {
            state = .answered
            return queueBodyTooLarge(server: server)
        }
        state = .discardingBody(received: received)
        return .YES
    }

    /// Sends the 413 answer and closes the connection afterwards. The request is being answered from
    /// now on: the body deadline no longer applies.
    private func queueBodyTooLarge(server: ServerContext) -> MHD_Result {
        record?.bodyReceived()
        var response = server.errorResponse(.bodyTooLarge(limit: server.maxBodySize))
        response.headers.append((name: "Connection", value: "close"))
        return MHDResponse.queue(response, on: connection, server: server)
    }

    /// The last call: runs the handler and queues its response (or defers it, or starts its stream).
    private func handle(_ call: AccessCall, body: [UInt8], server: ServerContext) -> MHD_Result {
        record?.bodyReceived()
        guard !hasTooManyQueryParameters else {
            state = .answered
            return MHDResponse.queue(
                server.errorResponse(.tooManyQueryParameters(limit: server.maxQueryParameters)),
                on: connection,
                server: server
            )
        }
        let methodHasNUL = RequestLine.methodHasNUL(method: call.method, url: call.url)
        // A method cut short at a NUL is not that method: "DELETE\u{FFFD}" is answered 405.
        let method = call.method.map { String(cString: $0) + (methodHasNUL ? "\u{FFFD}" : "") } ?? "GET"
        let validPath = call.url.flatMap { String(validatingCString: $0) }
        let targetHasNUL = RequestLine.targetHasNUL(url: call.url, version: call.version, rawLength: rawTargetLength)
        let request = HTTPRequest(
            method: method,
            path: validPath ?? call.url.map { String(cString: $0) } ?? "/",
            pathIsValidUTF8: (validPath != nil || call.url == nil) && !targetHasNUL,
            body: body,
            context: self
        )
        state = .handling
        let response = server.handler.handle(request)
        switch response.body {
        case .bytes:
            defer { state = .answered }
            return queueComplete(response, acceptsGzip: request.acceptsGzip, server: server)
        case .stream(let configuration):
            guard (100...999).contains(response.status) else {
                state = .answered
                return queueInvalidResponse("stream response has invalid status \(response.status)", server: server)
            }
            guard method != "HEAD" else {
                // No stream for HEAD. An empty buffer, not a chunked callback response: libmicrohttpd
                // 0.9.75 writes the terminating "0\r\n\r\n" chunk even for HEAD, which corrupts keep-alive.
                state = .answered
                return MHDResponse.queue(
                    on: connection,
                    status: response.status,
                    headers: response.headers,
                    body: [],
                    server: server
                )
            }
            state = .streaming
            return MHDResponse.queueStream(
                on: connection,
                status: response.status,
                headers: response.headers,
                configuration,
                server: server
            )
        case .deferred(let deferred):
            // The outer status and headers are ignored. Accept-Encoding is read now, while it can be.
            let acceptEncoding = request.header("Accept-Encoding")
            startDeferred(deferred, acceptEncoding: acceptEncoding, server: server)
            return .YES
        }
    }

    /// Suspends the connection, then hands its responder to the deferred response's `start`.
    ///
    /// The suspend comes first (under the responder's lock), so no answer can resume the connection
    /// before it is suspended, even one given synchronously inside `start`. libmicrohttpd calls the
    /// access handler again once the connection is resumed.
    private func startDeferred(_ deferred: HTTPDeferredResponse, acceptEncoding: String?, server: ServerContext) {
        let responder = HTTPResponder(transport: DeferredConnection(connection))
        responder.suspend()
        let (token, accepted) = server.deferred.insert(responder)
        state = .deferred(DeferredRequest(responder: responder, token: token, acceptEncoding: acceptEncoding))
        if !accepted {
            // The shutdown has answered every waiting request already and is about to stop the daemon.
            responder.respond(server.errorResponse(.shuttingDown))
        }
        deferred.start(responder)
    }

    /// Queues the response given to ``HTTPResponder/respond(_:)``, treated like a handler's complete one.
    private func queueDeferredAnswer(
        _ response: HTTPResponse,
        acceptEncoding: String?,
        server: ServerContext
    ) -> MHD_Result {
        queueComplete(response, acceptsGzip: acceptEncoding.map(AcceptEncoding.allowsGzip) ?? false, server: server)
    }

    /// Queues a complete response, gzipped when it asks for it and the client accepts it. One that
    /// cannot be sent (a status outside 100...999, or a stream or deferred body where a complete one
    /// is needed) is reported and replaced by the 500 answer.
    private func queueComplete(
        _ response: HTTPResponse,
        acceptsGzip: @autoclosure () -> Bool,
        server: ServerContext
    ) -> MHD_Result {
        guard (100...999).contains(response.status), case .bytes(let body) = response.body else {
            let problem =
                (100...999).contains(response.status)
                ? "a response that must be complete has a stream or deferred body"
                : "response has invalid status \(response.status)"
            return queueInvalidResponse(problem, server: server)
        }
        return MHDResponse.queue(
            on: connection,
            status: response.status,
            headers: response.headers,
            body: body,
            compress: response.compressIfAccepted,
            acceptsGzip: acceptsGzip(),
            server: server
        )
    }

    /// Logs `problem` and queues the 500 answer that replaces the response.
    private func queueInvalidResponse(_ problem: String, server: ServerContext) -> MHD_Result {
        server.log("MicroHTTP: \(problem); sending 500")
        let response = server.errorResponse(.internalError("The handler returned a response that cannot be sent."))
        return MHDResponse.queue(response, on: connection, server: server)
    }
}

internal import CMicroHTTPD

/// libmicrohttpd responses (`struct MHD_Response *`): creating one, adding its headers, queueing it
/// on a connection and destroying it, for complete bodies and for streams.
enum MHDResponse {
    /// Queues a complete response (`response.body` must be `.bytes`; anything else queues nothing).
    static func queue(_ response: HTTPResponse, on connection: MHDConnection, server: ServerContext) -> MHD_Result {
        guard case .bytes(let body) = response.body else { return .NO }
        return queue(on: connection, status: response.status, headers: response.headers, body: body, server: server)
    }

    /// Queues a complete body: gzipped when `compress` and the client accepts it (and the body is large
    /// enough), with `Vary: Accept-Encoding` whenever `compress`.
    static func queue(
        on connection: MHDConnection,
        status: Int,
        headers: [(name: String, value: String)],
        body: [UInt8],
        compress: Bool,
        acceptsGzip: @autoclosure () -> Bool,
        server: ServerContext
    ) -> MHD_Result {
        var body = body
        var gzipped = false
        if compress && body.count >= HTTPResponse.compressionThreshold && acceptsGzip() {
            do {
                body = try Gzip.compress(body)
                gzipped = true
            } catch {
                server.log("MicroHTTP: gzip failed (\(error)); sending the body uncompressed")
            }
        }
        return queue(on: connection, status: status, headers: headers, body: body, server: server) { response in
            if compress { _ = MHD_add_response_header(response, "Vary", "Accept-Encoding") }
            if gzipped { _ = MHD_add_response_header(response, "Content-Encoding", "gzip") }
        }
    }

    /// Queues a complete body as it is (`MHD_RESPMEM_MUST_COPY`).
    static func queue(
        on connection: MHDConnection,
        status: Int,
        headers: [(name: String, value: String)],
        body: [UInt8],
        server: ServerContext,
        addMore: (OpaquePointer) -> Void = { _ in }
    ) -> MHD_Result {
        let response = body.withUnsafeBytes { bytes in
            MHD_create_response_from_buffer(
                bytes.count,
                UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                .RESPMEM_MUST_COPY
            )
        }
        guard let response else {
            server.log("MicroHTTP: MHD_create_response_from_buffer failed")
            return .NO
        }
        addHeaders(response, headers, server: server)
        addMore(response)
        let result = MHD_queue_response(connection.pointer, UInt32(status), response)
        MHD_destroy_response(response)
        return result
    }

    /// Queues a streaming response (chunked; close-delimited for HTTP/1.0) and hands its writer to the
    /// stream's `start`.
    static func queueStream(
        on connection: MHDConnection,
        status: Int,
        headers: [(name: String, value: String)],
        _ configuration: HTTPStreamConfiguration,
        server: ServerContext
    ) -> MHD_Result {
        if let bytes = configuration.socketSendBufferBytes { connection.setSendBuffer(bytes) }
        let token = server.streams.makeToken()
        let transport = StreamConnection(connection, token: token, monitor: server.monitor)
        let writer = HTTPStreamWriter(bufferLimit: configuration.bufferLimit, transport: transport)
        let binding = StreamBinding(writer: writer, token: token, registry: server.streams)
        let bindingPointer = Unmanaged.passRetained(binding).toOpaque()
        // MHD_SIZE_UNKNOWN: chunked transfer encoding (HTTP/1.1), or close-delimited (HTTP/1.0).
        guard
            let response = MHD_create_response_from_callback(
                UInt64.max,
                16 * 1024,
                streamReader,
                bindingPointer,
                streamFree
            )
        else {
            Unmanaged<StreamBinding>.fromOpaque(bindingPointer).release()
            server.log("MicroHTTP: MHD_create_response_from_callback failed")
            return .NO
        }
        if !server.streams.insert(writer, token: token) {
            writer.finish()  // shutting down: the stream ends right after the headers
        }
        addHeaders(response, headers, server: server)
        let result = MHD_queue_response(connection.pointer, UInt32(status), response)
        MHD_destroy_response(response)  // if queueing failed this frees the binding (streamFree)
        if result == .YES {
            configuration.start(writer)
        }
        return result
    }

    private static func addHeaders(
        _ response: OpaquePointer,
        _ headers: [(name: String, value: String)],
        server: ServerContext
    ) {
        for header in headers {
            // Explicit withCString: see MHDConnection.header(_:).
            let added = header.name.withCString { name in
                header.value.withCString { value in MHD_add_response_header(response, name, value) }
            }
            if added != .YES {
                server.log("MicroHTTP: response header \"\(header.name)\" was rejected by libmicrohttpd and dropped")
            }
        }
        if server.isShuttingDown {
            _ = MHD_add_response_header(response, "Connection", "close")
        }
    }
}

/// What the content reader's `cls` points to (retained until the free callback).
private final class StreamBinding {
    let writer: HTTPStreamWriter
    let token: UInt64
    let registry: StreamRegistry

    init(writer: HTTPStreamWriter, token: UInt64, registry: StreamRegistry) {
        self.writer = writer
        self.token = token
        self.registry = registry
    }
}

/// `MHD_ContentReaderCallback` of streams.
private func streamReader(
    _ cls: UnsafeMutableRawPointer?,
    _ position: UInt64,
    _ buffer: UnsafeMutablePointer<CChar>?,
    _ maximum: Int
) -> Int {
    guard let cls, let buffer, maximum > 0 else { return -2 }
    let binding = Unmanaged<StreamBinding>.fromOpaque(cls).takeUnretainedValue()
    let drained = binding.writer.drain(maximum: maximum) { chunk in
        UnsafeMutableRawPointer(buffer).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count)
    }
    switch drained {
    case .bytes(let count):
        return count
    case .parked:
        return 0  // the connection is suspended, so MHD does not call again until it is resumed
    case .endOfStream:
        return -1  // MHD_CONTENT_READER_END_OF_STREAM
    case .abort:
        return -2  // MHD_CONTENT_READER_END_WITH_ERROR: close the connection
    }
}

/// `MHD_ContentReaderFreeCallback` of streams: the response is gone, so is the stream.
private func streamFree(_ cls: UnsafeMutableRawPointer?) {
    guard let cls else { return }
    let binding = Unmanaged<StreamBinding>.fromOpaque(cls).takeRetainedValue()
    binding.registry.remove(binding.token)
    binding.writer.connectionEnded()
}

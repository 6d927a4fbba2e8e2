internal import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The C functions libmicrohttpd calls: each one finds its Swift object (``ServerContext`` through
/// `cls`, ``RequestContext`` through the per-request pointer) and hands over.
enum MHDCallbacks {
    /// `MHD_OPTION_URI_LOG_CALLBACK`: `void *(*)(void *cls, const char *uri, struct MHD_Connection *c)`.
    typealias URILog =
        @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer?

    /// `MHD_OPTION_UNESCAPE_CALLBACK`: `size_t (*)(void *cls, struct MHD_Connection *c, char *s)`
    /// (microhttpd.h names no type for it).
    typealias Unescape = @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int

    static let uriLog: URILog = requestStarted
    static let unescape: Unescape = percentDecode
    static let completed: MHD_RequestCompletedCallback = requestCompleted
    static let access: MHD_AccessHandlerCallback = accessHandler
    static let logSink: CMicroHTTPD_LogSink = logLine
    static let acceptPolicy: MHD_AcceptPolicyCallback = admitConnection
    static let connectionNotification: MHD_NotifyConnectionCallback = connectionChanged
}

/// The accept policy: whether ``ConnectionGuard`` admits a new connection from `address`.
private func admitConnection(
    _ cls: UnsafeMutableRawPointer?,
    _ address: UnsafePointer<sockaddr>?,
    _ length: socklen_t
) -> MHD_Result {
    guard let cls else { return .YES }
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    return server.connections.admits(ClientAddress(address, length: Int(length))) ? .YES : .NO
}

/// `MHD_OPTION_NOTIFY_CONNECTION`: a connection started (its ``ConnectionRecord`` becomes the
/// connection's socket context) or is about to close (the record is released).
private func connectionChanged(
    _ cls: UnsafeMutableRawPointer?,
    _ connection: OpaquePointer?,
    _ socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ change: MHD_ConnectionNotificationCode
) {
    guard let cls, let connection, let socketContext else { return }
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    switch change {
    case .CONNECTION_NOTIFY_STARTED:
        let client = ClientAddress(CMicroHTTPD_connection_client_address(connection), length: Int.max) ?? .unknown
        let record = ConnectionRecord(
            socket: CMicroHTTPD_connection_fd(connection),
            client: client,
            tlsIdentity: server.tlsIdentity
        )
        socketContext.pointee = Unmanaged.passRetained(record).toOpaque()
        server.connections.opened(record)
    default:
        guard let pointer = socketContext.pointee else { return }
        socketContext.pointee = nil
        server.connections.closed(Unmanaged<ConnectionRecord>.fromOpaque(pointer).takeRetainedValue())
    }
}

/// `MHD_OPTION_URI_LOG_CALLBACK`, the first callback of every request: creates its
/// ``RequestContext``, which libmicrohttpd keeps as the request's pointer until
/// ``requestCompleted(_:_:_:_:)``.
///
/// `uri` is the raw request target, before libmicrohttpd splits off the query and decodes it: its
/// length tells whether it held a NUL byte (``RequestLine/targetHasNUL(url:version:rawLength:)``),
/// and a query of more than ``HTTPServerConfiguration/maxQueryParameters`` arguments is emptied here
/// (libmicrohttpd would otherwise run out of connection memory storing them and leave the request
/// unanswered); such a request is answered 414.
private func requestStarted(
    _ cls: UnsafeMutableRawPointer?,
    _ uri: UnsafePointer<CChar>?,
    _ connection: OpaquePointer?
) -> UnsafeMutableRawPointer? {
    guard let cls, let connection else { return nil }
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    let mhdConnection = MHDConnection(pointer: connection)
    let request = RequestContext(
        connection: mhdConnection,
        rawTargetLength: uri.map { strlen($0) },
        record: mhdConnection.record
    )
    if let uri, RequestLine.dropQuery(of: UnsafeMutablePointer(mutating: uri), above: server.maxQueryParameters) {
        request.hasTooManyQueryParameters = true
    }
    return Unmanaged.passRetained(request).toOpaque()
}

/// `MHD_OPTION_NOTIFY_COMPLETED`: the request is over (answered, aborted, or the daemon stopped);
/// releases its context.
private func requestCompleted(
    _ cls: UnsafeMutableRawPointer?,
    _ connection: OpaquePointer?,
    _ requestPointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ termination: MHD_RequestTerminationCode
) {
    guard let cls, let requestPointer, let pointer = requestPointer.pointee else { return }
    requestPointer.pointee = nil
    let request = Unmanaged<RequestContext>.fromOpaque(pointer).takeRetainedValue()
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    if let deferred = request.deferredRequest {
        // The connection is about to go: a late respond() must not touch it.
        deferred.responder.connectionEnded()
        server.deferred.remove(deferred.token)
    }
    if request.isInFlight { server.requestEnded() }
    request.record?.requestCompleted()
}

/// `MHD_AccessHandlerCallback`: hands the call to the request's ``RequestContext``.
private func accessHandler(
    _ cls: UnsafeMutableRawPointer?,
    _ connection: OpaquePointer?,
    _ url: UnsafePointer<CChar>?,
    _ method: UnsafePointer<CChar>?,
    _ version: UnsafePointer<CChar>?,
    _ uploadData: UnsafePointer<CChar>?,
    _ uploadDataSize: UnsafeMutablePointer<Int>?,
    _ requestPointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let uploadDataSize, let requestPointer, let pointer = requestPointer.pointee else { return .NO }
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    let request = Unmanaged<RequestContext>.fromOpaque(pointer).takeUnretainedValue()
    let call = AccessCall(
        url: url,
        method: method,
        version: version,
        uploadData: uploadData,
        uploadDataSize: uploadDataSize
    )
    return request.process(call, server: server)
}

/// `CMicroHTTPD_LogSink`: one formatted libmicrohttpd log line.
private func logLine(_ cls: UnsafeMutableRawPointer?, _ message: UnsafePointer<CChar>?) {
    guard let cls, let message else { return }
    let server = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    var text = String(cString: message)
    while text.last == "\n" {
        text.removeLast()
    }
    server.log("libmicrohttpd: " + text)
}

/// `MHD_OPTION_UNESCAPE_CALLBACK`: percent-decodes the URL path and each query argument in place, as
/// libmicrohttpd's own decoder does (`%XY` with two hex digits becomes that byte; anything else is kept),
/// except that `%00` becomes `0xFF`.
///
/// The handler receives the path as a C string, so a decoded NUL would cut it short:
/// `DELETE /v1/sessions%00/x?confirm=true` would reach the handler as `DELETE /v1/sessions`. `0xFF` is
/// never valid UTF-8, so such a path is reported invalid (``HTTPRequest/pathIsValidUTF8``) instead.
/// A raw NUL byte in the target is caught before decoding (``RequestLine``). Returns the new length,
/// and ends the string with a NUL.
private func percentDecode(
    _ cls: UnsafeMutableRawPointer?,
    _ connection: OpaquePointer?,
    _ text: UnsafeMutablePointer<CChar>?
) -> Int {
    guard let text else { return 0 }
    let bytes = UnsafeMutableRawPointer(text).assumingMemoryBound(to: UInt8.self)
    func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    var read = 0
    var write = 0
    while bytes[read] != 0 {
        if bytes[read] == UInt8(ascii: "%"), bytes[read + 1] != 0, bytes[read + 2] != 0,
            let high = hexValue(bytes[read + 1]), let low = hexValue(bytes[read + 2])
        {
            let decoded = high << 4 | low
            bytes[write] = decoded == 0 ? 0xFF : decoded
            read += 3
        } else {
            bytes[write] = bytes[read]
            read += 1
        }
        write += 1
    }
    bytes[write] = 0
    return write
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Settings of an ``HTTPServer``.
///
/// ```swift
/// var configuration = HTTPServerConfiguration(port: 0)
/// configuration.connectionTimeout = .seconds(10)
/// let server = try HTTPServer(configuration: configuration, handler: handler)
/// ```
public struct HTTPServerConfiguration: Sendable {
    /// The address to listen on: an IPv4 (`"127.0.0.1"`, `"0.0.0.0"`) or IPv6 (`"::1"`, `"::"`) literal.
    ///
    /// Host names are not resolved.
    public var host: String
    /// The TCP port; 0 picks a free port (read it back with ``HTTPServer/port``).
    public var port: Int
    /// The number of libmicrohttpd worker threads (each one runs its own epoll loop and calls the handler).
    public var threadCount: Int
    /// The maximum number of open connections (idle keep-alive, in-flight and streaming ones).
    ///
    /// A connection above it is closed as soon as it is accepted (counted in
    /// ``HTTPConnectionStatistics/refusedConnectionLimit``), so it never waits in the kernel's queue.
    public var connectionLimit: Int
    /// How long a connection may stay inactive (no bytes received or sent) before it is closed.
    ///
    /// This drops idle keep-alive connections, clients that send half a request and stall, and clients that
    /// stop reading a response. A streaming response that is waiting for data is *not* subject to it (its
    /// connection is suspended). Whole seconds, rounded up; `.zero` disables the timeout.
    public var connectionTimeout: Duration
    /// The largest request body accepted. A larger body is answered with `413`
    /// (``HTTPServerError/Code/bodyTooLarge``, rendered by ``errorResponse``), and the connection is
    /// closed.
    public var maxBodySize: Int
    /// The budget for the request line plus headers.
    ///
    /// It sizes libmicrohttpd's per-connection memory pool (``connectionMemoryLimit``, `2 * maxHeaderBytes
    /// + 2 KiB`: 18 KiB for sessiond's 8 KiB), which holds the received bytes, about 64 bytes of
    /// bookkeeping per header line and the response's status line and headers. Accepted for sure: a
    /// request line and headers of up to `maxHeaderBytes` in lines of 64 bytes or more on average, that
    /// is in up to `maxHeaderBytes / 64` lines (128 for 8 KiB; real requests to this API have fewer than
    /// 20), without a `Cookie` header and with few query arguments: libmicrohttpd 0.9.75 also keeps a
    /// copy of the `Cookie` header, and about 64 bytes per cookie and per query argument, in the pool.
    /// Fewer, longer lines fit well beyond the budget: one header of up to about
    /// ``connectionMemoryLimit``. A request whose line and headers do not fit is answered by libmicrohttpd
    /// itself, without calling the handler, and the connection is closed: `431 Request Header Fields Too
    /// Large`, or `414 URI Too Long` when the request line alone is too long (short HTML bodies, not
    /// rendered by ``errorResponse``). When the pool runs out where not even that answer fits (just above what
    /// fits, or with many short lines), the connection is closed without a response.
    ///
    /// The pool is zeroed after every request (libmicrohttpd 0.9.75), so its size is a cost per request
    /// (Benchmarks/RESULTS.md, "HTTP API under load", measures it).
    public var maxHeaderBytes: Int
    /// The maximum number of connections from one client, an IPv4 address or an IPv6 /64 (loopback
    /// addresses included); 0 means unlimited. A connection above it is closed as soon as it is accepted (counted in
    /// ``HTTPConnectionStatistics/refusedPerClientLimit``). Two connections of one client accepted at
    /// the same moment on two threads can both pass, so a client can exceed it by `threadCount - 1`.
    public var perIPConnectionLimit: Int
    /// How long a request head (request line and headers) may take to arrive, from its first byte;
    /// `.zero` turns it off. A connection past it is closed, however slowly its client keeps sending
    /// (``HTTPConnectionStatistics/headerTimeouts``). Checked every 250 ms: a head is cut off between
    /// the timeout and 250 ms after it. On a keep-alive connection, bytes that arrive within 250 ms of
    /// the end of the previous request are noticed with the next bytes of the head.
    public var headerTimeout: Duration
    /// How long a request body may take to arrive, from the end of its head; `.zero` turns it off
    /// (``HTTPConnectionStatistics/bodyTimeouts``).
    public var bodyTimeout: Duration
    /// The most query arguments (`&`-separated parts of the query) a request may have. A request with
    /// more is answered 414 (``HTTPServerError/Code/tooManyQueryParameters``) without its query reaching
    /// libmicrohttpd's parser, which keeps about 64 bytes of connection memory per argument and leaves
    /// a request that exhausts it unanswered. The limit applied is the smaller of this and
    /// `connectionMemoryLimit / 128` (144 for sessiond's 8 KiB header budget).
    public var maxQueryParameters: Int
    /// Serve HTTPS with this certificate and key (TLS 1.2 and 1.3 only); `nil` (the default) serves
    /// plain HTTP. ``TLSIdentity/reload(certificatePEM:privateKeyPEM:)`` replaces the certificate
    /// while the server runs.
    public var tls: TLSIdentity?
    /// Receives libmicrohttpd's error log lines (and MicroHTTP's own warnings). `nil` discards them.
    ///
    /// Called on arbitrary threads; must not block. Client misbehaviour (resets, timeouts) is logged here
    /// too, so do not treat every line as a server fault.
    public var errorLog: (@Sendable (String) -> Void)?
    /// Renders the error answers the server gives by itself (``HTTPServerError``): a body too large,
    /// a deferred request still waiting at the end of a shutdown, an invalid response. Default:
    /// ``HTTPServerError/plainTextResponse``. Must return a complete (`.bytes`) body; called on
    /// libmicrohttpd's threads.
    public var errorResponse: @Sendable (HTTPServerError) -> HTTPResponse

    /// Creates a configuration; every parameter has a default.
    ///
    /// - Parameters:
    ///   - host: IPv4 or IPv6 literal to bind; default `"127.0.0.1"`.
    ///   - port: TCP port, 0 for any free port; default 8080.
    ///   - threadCount: Worker threads; default the number of online CPUs.
    ///   - connectionLimit: Maximum open connections; default 1024.
    ///   - connectionTimeout: Inactivity timeout; default 30 seconds.
    ///   - maxBodySize: Largest request body; default 1 MiB.
    ///   - maxHeaderBytes: Request line plus headers budget; default 16 KiB.
    ///   - perIPConnectionLimit: Connections per client (an IPv4 address or an IPv6 /64), 0 = unlimited;
    ///     default 0.
    ///   - headerTimeout: Time for a request head from its first byte, `.zero` = off; default off.
    ///   - bodyTimeout: Time for a request body from the end of its head, `.zero` = off; default off.
    ///   - maxQueryParameters: Query arguments above which a request is answered 414; default 100.
    ///   - errorLog: Error log sink; default `nil` (discarded).
    ///   - errorResponse: Renders the server's own error answers; default plain text.
    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        threadCount: Int = HTTPServerConfiguration.defaultThreadCount,
        connectionLimit: Int = 1024,
        connectionTimeout: Duration = .seconds(30),
        maxBodySize: Int = 1 << 20,
        maxHeaderBytes: Int = 16 * 1024,
        perIPConnectionLimit: Int = 0,
        headerTimeout: Duration = .zero,
        bodyTimeout: Duration = .zero,
        maxQueryParameters: Int = 100,
        errorLog: (@Sendable (String) -> Void)? = nil,
        errorResponse: @escaping @Sendable (HTTPServerError) -> HTTPResponse = HTTPServerError.plainTextResponse
    ) {
        self.host = host
        self.port = port
        self.threadCount = threadCount
        self.connectionLimit = connectionLimit
        self.connectionTimeout = connectionTimeout
        self.maxBodySize = maxBodySize
        self.maxHeaderBytes = maxHeaderBytes
        self.perIPConnectionLimit = perIPConnectionLimit
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.maxQueryParameters = maxQueryParameters
        self.errorLog = errorLog
        self.errorResponse = errorResponse
    }

    /// The number of online CPUs (at least 1).
    public static var defaultThreadCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Checks the values that libmicrohttpd would otherwise reject with a vague message.
    func validate() throws {
        func invalid(_ message: String) -> MicroHTTPError {
            MicroHTTPError(code: .invalidConfiguration, message: message)
        }
        guard (0...65535).contains(port) else { throw invalid("port \(port) is outside 0...65535") }
        guard (1...256).contains(threadCount) else { throw invalid("threadCount \(threadCount) is outside 1...256") }
        guard connectionLimit >= threadCount, connectionLimit <= Int(Int32.max) else {
            throw invalid("connectionLimit \(connectionLimit) must be at least threadCount (\(threadCount))")
        }
        guard connectionTimeout >= .zero else { throw invalid("connectionTimeout must not be negative") }
        guard maxBodySize >= 0 else { throw invalid("maxBodySize must not be negative") }
        guard (1024...(64 << 20)).contains(maxHeaderBytes) else {
            throw invalid("maxHeaderBytes \(maxHeaderBytes) is outside 1024...67108864")
        }
        guard (0...Int(Int32.max)).contains(perIPConnectionLimit) else {
            throw invalid("perIPConnectionLimit must not be negative")
        }
        guard headerTimeout >= .zero, bodyTimeout >= .zero else {
            throw invalid("headerTimeout and bodyTimeout must not be negative")
        }
        guard maxQueryParameters >= 1 else { throw invalid("maxQueryParameters must be at least 1") }
        guard tls == nil || TLSIdentity.isSupported else {
            throw MicroHTTPError(code: .tlsFailed, message: "this libmicrohttpd was built without TLS support")
        }
    }

    /// libmicrohttpd's per-connection memory pool (`MHD_OPTION_CONNECTION_MEMORY_LIMIT`), derived from
    /// ``maxHeaderBytes``: room for the budget itself, its header bookkeeping (64 bytes per 64-byte line)
    /// and 2 KiB for the response head and libmicrohttpd's own state.
    var connectionMemoryLimit: Int { 2 * maxHeaderBytes + 2 * 1024 }

    /// The query-argument limit applied: ``maxQueryParameters``, at most what the connection memory holds.
    var effectiveMaxQueryParameters: Int { min(maxQueryParameters, connectionMemoryLimit / 128) }

    /// ``connectionTimeout`` in whole seconds, rounded up (0 = no timeout).
    var connectionTimeoutSeconds: UInt32 {
        let (seconds, attoseconds) = connectionTimeout.components
        let rounded = seconds + (attoseconds > 0 ? 1 : 0)
        return UInt32(clamping: rounded)
    }
}

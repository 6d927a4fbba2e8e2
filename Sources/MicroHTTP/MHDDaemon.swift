internal import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Owns one libmicrohttpd daemon: the `MHD_Daemon` pointer, the context handed to it as `cls`, the C
/// callbacks (access handler, request-completed, content reader, logger), the per-request contexts, the
/// stream connections and the suspended connections of deferred responses. All of MicroHTTP's
/// libmicrohttpd calls live in this file.
///
/// Request flow: the first access-handler call of a request only allocates a ``RequestContext`` (queued
/// responses on that call would be "early responses" that lose keep-alive); body chunks are appended on
/// the following calls; the call with `*upload_data_size == 0` runs the ``HTTPHandler`` and queues the
/// response. The context is released in `MHD_OPTION_NOTIFY_COMPLETED`, which also runs for aborted requests
/// and at `MHD_stop_daemon`.
///
/// Deferred responses (``HTTPDeferredResponse``): when the handler returns one, the final call suspends the
/// connection (`MHD_suspend_connection`, under the ``HTTPResponder``'s lock), registers the responder in the
/// ``DeferredRegistry``, calls the response's `start` and returns `MHD_YES` without a response; no thread
/// waits. ``HTTPResponder/respond(_:)`` stores the response and calls `MHD_resume_connection` (under the same
/// lock, and only while the connection is suspended, so a resume never precedes its suspend and never
/// reaches a connection that has ended). libmicrohttpd 0.9.75 then runs the final access-handler call
/// again (no upload data, `*upload_data_size == 0`; it repeats that call until a response is queued, as in
/// its `suspend_resume_epoll.c` example), and that call queues the stored response like any other: status
/// check, gzip negotiated with the `Accept-Encoding` captured during `handle()`, `Vary`, `Connection: close`
/// while shutting down, and no early response, so keep-alive is kept. The request stays in flight until
/// `NOTIFY_COMPLETED`, which also ends the responder (a later `respond` returns `false`).
///
/// Streams: `MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, ...)`. When the reader has nothing to
/// send it suspends the connection (allowed from a content reader, microhttpd.h 0.9.75) and returns 0;
/// ``HTTPStreamWriter`` resumes it when data, the end, or a hang-up arrives. Suspend and resume are both
/// called under the writer's lock, so a resume never precedes its suspend.
///
/// Shutdown: quiesce, finish the streams, wait for the requests in flight (deferred ones included) up to the
/// grace period, answer every deferred request still waiting with a 503 `shutting_down` error, wait briefly
/// for those answers to be sent, then `MHD_stop_daemon`. No connection is suspended by then: libmicrohttpd
/// panics on a suspended connection at stop, and closes a resumed one that it has not processed yet without
/// sending its response.
///
/// `@unchecked Sendable`: the daemon pointer never changes, the libmicrohttpd calls made through it
/// (`MHD_quiesce_daemon`, `MHD_stop_daemon`) are serialised by ``lifecycle``, and the context is `Sendable`.
final class MHDDaemon: @unchecked Sendable {
    private enum Lifecycle {
        case running
        case stopped
    }

    private let daemon: OpaquePointer
    private let context: Context
    /// The logger's C closure; freed after `MHD_stop_daemon`.
    private let logger: UnsafeMutablePointer<CMicroHTTPD_Logger>
    private let lifecycle = Mutex(Lifecycle.running)

    /// The bound TCP port.
    let port: Int

    /// How long a shutdown waits, after the grace period, for the 503 answers of deferred requests to go out.
    static let deferredDrainLimit = Duration.seconds(1)

    /// Starts the daemon.
    init(configuration: HTTPServerConfiguration, handler: any HTTPHandler) throws {
        try configuration.validate()
        Self.suppressSIGPIPEIfNeeded()

        let registry = StreamRegistry()
        let errorLog = configuration.errorLog
        let monitor = try HangupMonitor(log: { errorLog?($0) }) { token in registry.hungUp(token) }
        let context = Context(
            configuration: configuration,
            handler: handler,
            streams: registry,
            deferred: DeferredRegistry(),
            monitor: monitor
        )

        var flags = MHD_USE_EPOLL.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_ITC.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        var address = sockaddr_storage()
        let addressIsIPv6: Bool
        do {
            addressIsIPv6 = try Self.makeAddress(host: configuration.host, port: configuration.port, into: &address)
        } catch {
            monitor.stop()
            throw error
        }
        if addressIsIPv6 {
            flags |= MHD_USE_IPv6.rawValue
        }

        let contextPointer = Unmanaged.passRetained(context).toOpaque()
        let logger = UnsafeMutablePointer<CMicroHTTPD_Logger>.allocate(capacity: 1)
        logger.initialize(to: CMicroHTTPD_Logger(sink: logSink, cls: contextPointer))
        let started: OpaquePointer? = withUnsafeMutablePointer(to: &address) { addressPointer in
            var options: [MHD_OptionItem] = [
                // The logger goes first so that start-up messages reach it too.
                CMicroHTTPD_logger_option(logger),
                MHD_OptionItem(
                    option: .NOTIFY_COMPLETED,
                    value: unsafeBitCast(requestCompleted as MHD_RequestCompletedCallback, to: Int.self),
                    ptr_value: contextPointer
                ),
                MHD_OptionItem(option: .SOCK_ADDR, value: 0, ptr_value: UnsafeMutableRawPointer(addressPointer)),
                MHD_OptionItem(
                    option: .URI_LOG_CALLBACK,
                    value: unsafeBitCast(uriLogged as URILogCallback, to: Int.self),
                    ptr_value: nil
                ),
                MHD_OptionItem(
                    option: .UNESCAPE_CALLBACK,
                    value: unsafeBitCast(percentDecode as UnescapeCallback, to: Int.self),
                    ptr_value: nil
                ),
                MHD_OptionItem(option: .CONNECTION_LIMIT, value: configuration.connectionLimit, ptr_value: nil),
                MHD_OptionItem(
                    option: .CONNECTION_TIMEOUT,
                    value: Int(configuration.connectionTimeoutSeconds),
                    ptr_value: nil
                ),
                MHD_OptionItem(option: .CONNECTION_MEMORY_LIMIT, value: configuration.connectionMemoryLimit, ptr_value: nil),
            ]
            if configuration.perIPConnectionLimit > 0 {
                options.append(
                    MHD_OptionItem(
                        option: .PER_IP_CONNECTION_LIMIT,
                        value: configuration.perIPConnectionLimit,
                        ptr_value: nil
                    )
                )
            }
            if configuration.threadCount > 1 {
                options.append(
                    MHD_OptionItem(option: .THREAD_POOL_SIZE, value: configuration.threadCount, ptr_value: nil)
                )
            }
            options.append(MHD_OptionItem(option: .END, value: 0, ptr_value: nil))
            return options.withUnsafeBufferPointer { optionArray in
                CMicroHTTPD_start_daemon(flags, 0, accessHandler, contextPointer, optionArray.baseAddress)
            }
        }
        let startupLog = context.endStartupCapture()

        guard let started else {
            Unmanaged<Context>.fromOpaque(contextPointer).release()
            logger.deinitialize(count: 1)
            logger.deallocate()
            monitor.stop()
            let details = startupLog.joined(separator: " ")
            let endpoint = "\(configuration.host) port \(configuration.port)"
            if details.contains("in use") {
                throw MicroHTTPError(
                    code: .addressInUse,
                    message: "cannot listen on \(endpoint): address already in use (\(details))",
                    cause: EADDRINUSE
                )
            }
            throw MicroHTTPError(
                code: .startFailed,
                message: "libmicrohttpd could not start on \(endpoint)"
                    + (details.isEmpty ? "" : ": \(details)")
            )
        }
        self.daemon = started
        self.context = context
        self.logger = logger
        self.port = Int(CMicroHTTPD_bound_port(started))
    }

    deinit {
        shutdown(gracePeriod: .zero)
    }

    /// Stops accepting, waits up to `gracePeriod` for in-flight requests, ends open streams, stops the
    /// daemon. Idempotent; concurrent callers return once the daemon has stopped.
    func shutdown(gracePeriod: Duration) {
        lifecycle.withLock { lifecycle in
            guard case .running = lifecycle else { return }
            lifecycle = .stopped

            context.shuttingDown.store(true, ordering: .releasing)
            // Stop accepting. The listen socket is ours to close, but only after MHD_stop_daemon.
            let listenSocket = MHD_quiesce_daemon(daemon)

            // No new stream can start from now on; open ones end after sending what is pending.
            // Closing a stream resumes it if it was suspended, and a closed stream never suspends again,
            // so MHD_stop_daemon below cannot find a suspended connection (that would be an MHD_PANIC).
            context.streams.closeAll()

            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: max(gracePeriod, .zero))
            while context.inFlight.load(ordering: .acquiring) > 0 && clock.now < deadline {
                usleep(2_000)
            }

            // Deferred requests still waiting are answered now, and later ones at once, which resumes their
            // connections: MHD_stop_daemon must not find a suspended connection (MHD_PANIC). A resumed
            // connection that libmicrohttpd has not processed yet would be closed by MHD_stop_daemon without
            // its answer, so wait (briefly) until the deferred requests have completed.
            context.deferred.closeAll(answeringWith: shuttingDownResponse)
            let drainDeadline = clock.now.advanced(by: Self.deferredDrainLimit)
            while !context.deferred.isEmpty && clock.now < drainDeadline {
                usleep(2_000)
            }

            context.monitor.stop()
            MHD_stop_daemon(daemon)
            if listenSocket >= 0 {
                close(listenSocket)
            }
            logger.deinitialize(count: 1)
            logger.deallocate()
            Unmanaged.passUnretained(context).release()
        }
    }

    /// Ignores SIGPIPE unless libmicrohttpd suppresses it itself (it does on Linux: `MSG_NOSIGNAL`).
    private static func suppressSIGPIPEIfNeeded() {
        if MHD_is_feature_supported(.FEATURE_AUTOSUPPRESS_SIGPIPE) != .YES {
            signal(SIGPIPE, SIG_IGN)
        }
    }

    /// Fills `storage` with the address for `host`; returns whether it is IPv6.
    private static func makeAddress(host: String, port: Int, into storage: inout sockaddr_storage) throws -> Bool {
        var ipv4 = in_addr()
        if inet_pton(AF_INET, host, &ipv4) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                address.pointee.sin_family = sa_family_t(AF_INET)
                address.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                address.pointee.sin_addr = ipv4
            }
            return false
        }
        var ipv6 = in6_addr()
        let literal = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if inet_pton(AF_INET6, literal, &ipv6) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                address.pointee.sin6_family = sa_family_t(AF_INET6)
                address.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                address.pointee.sin6_addr = ipv6
            }
            return true
        }
        throw MicroHTTPError(
            code: .invalidConfiguration,
            message: "host \"\(host)\" is not an IPv4 or IPv6 address literal"
        )
    }
}

// MARK: - Shared context

extension MHDDaemon {
    /// State shared by all callbacks of one daemon (passed as `cls`).
    final class Context: Sendable {
        let handler: any HTTPHandler
        let maxBodySize: Int
        let errorLog: (@Sendable (String) -> Void)?
        /// Requests between their first access-handler call and NOTIFY_COMPLETED (streams included).
        let inFlight = Atomic<Int>(0)
        let shuttingDown = Atomic<Bool>(false)
        let streams: StreamRegistry
        let deferred: DeferredRegistry
        let monitor: HangupMonitor
        private let startupLog = Mutex<[String]?>([])

        init(
            configuration: HTTPServerConfiguration,
            handler: any HTTPHandler,
            streams: StreamRegistry,
            deferred: DeferredRegistry,
            monitor: HangupMonitor
        ) {
            self.handler = handler
            self.maxBodySize = configuration.maxBodySize
            self.errorLog = configuration.errorLog
            self.streams = streams
            self.deferred = deferred
            self.monitor = monitor
        }

        func log(_ message: String) {
            startupLog.withLock { lines in
                lines?.append(message)
            }
            errorLog?(message)
        }

        func endStartupCapture() -> [String] {
            startupLog.withLock { lines in
                defer { lines = nil }
                return lines ?? []
            }
        }
    }

    /// The open streams, by token, so that a hang-up or a shutdown can reach them.
    final class StreamRegistry: Sendable {
        private struct State {
            var nextToken: UInt64 = 1
            var writers: [UInt64: HTTPStreamWriter] = [:]
            var isClosing = false
        }

        private let state = Mutex(State())

        func makeToken() -> UInt64 {
            state.withLock { state in
                defer { state.nextToken += 1 }
                return state.nextToken
            }
        }

        /// Adds a writer; returns `false` (and does not add it) once ``closeAll()`` has run.
        func insert(_ writer: HTTPStreamWriter, token: UInt64) -> Bool {
            state.withLock { state in
                guard !state.isClosing else { return false }
                state.writers[token] = writer
                return true
            }
        }

        func remove(_ token: UInt64) {
            _ = state.withLock { $0.writers.removeValue(forKey: token) }
        }

        func hungUp(_ token: UInt64) {
            let writer = state.withLock { $0.writers[token] }
            writer?.clientDisconnected()
        }

        /// Finishes every open stream and refuses new ones.
        func closeAll() {
            let writers = state.withLock { state in
                state.isClosing = true
                return Array(state.writers.values)
            }
            for writer in writers {
                writer.finish()
            }
        }
    }

    /// The deferred requests between their suspension and their completion, by token, so that a shutdown
    /// can answer the ones still waiting and wait for all of them to be sent.
    final class DeferredRegistry: Sendable {
        private struct State {
            var nextToken: UInt64 = 1
            var responders: [UInt64: HTTPResponder] = [:]
            var isClosing = false
        }

        private let state = Mutex(State())

        /// Adds a responder (always, so that a shutdown waits for its answer to be sent). `accepted` is
        /// `false` once ``closeAll(answeringWith:)`` has run: the caller must answer it at once.
        func insert(_ responder: HTTPResponder) -> (token: UInt64, accepted: Bool) {
            state.withLock { state in
                let token = state.nextToken
                state.nextToken += 1
                state.responders[token] = responder
                return (token, !state.isClosing)
            }
        }

        func remove(_ token: UInt64) {
            _ = state.withLock { $0.responders.removeValue(forKey: token) }
        }

        /// Whether every deferred request has completed.
        var isEmpty: Bool {
            state.withLock { $0.responders.isEmpty }
        }

        /// Answers every request still waiting with `response` (answered ones keep their answer) and makes
        /// ``insert(_:)`` refuse new ones.
        func closeAll(answeringWith response: HTTPResponse) {
            let responders = state.withLock { state in
                state.isClosing = true
                return Array(state.responders.values)
            }
            for responder in responders {
                responder.respond(response)
            }
        }
    }

    /// What a deferred request keeps from its suspension to its completion.
    struct DeferredRequest {
        let responder: HTTPResponder
        let token: UInt64
        /// The request's `Accept-Encoding`, read while the request was valid (during `handle()`).
        let acceptEncoding: String?
    }

    /// The connection of one deferred request: suspends and resumes it for ``HTTPResponder``.
    ///
    /// `@unchecked Sendable`: `connection` is used only under the responder's lock, once to suspend (from the
    /// access handler, while libmicrohttpd is processing the connection) and at most once to resume (only
    /// while it is suspended, and libmicrohttpd neither times out nor closes a suspended connection; a
    /// shutdown resumes every one before `MHD_stop_daemon`). After that the pointer is never touched.
    final class DeferredConnection: HTTPResponderTransport, @unchecked Sendable {
        private let connection: OpaquePointer

        init(connection: OpaquePointer) {
            self.connection = connection
        }

        func suspend() {
            MHD_suspend_connection(connection)
        }

        func resume() {
            MHD_resume_connection(connection)
        }
    }

    /// Per-request state, stored in `*con_cls`.
    final class RequestContext {
        let connection: OpaquePointer
        var body: [UInt8] = []
        var hasResponded = false
        /// Set when the handler returned a deferred response.
        var deferred: DeferredRequest?
        /// Set once the body is known to be too large: how much of it has been read and dropped.
        var discardedBytes: Int?
        /// Set while the handler runs; lookups through ``HTTPRequest`` are refused outside it.
        var isHandlerActive = false
        /// Whether the request target held a raw NUL byte (see ``uriLogged(_:_:_:)``).
        var targetHasNUL = false
        /// Whether the method held a raw NUL byte (see ``methodHasNUL(method:url:)``).
        var methodHasNUL = false

        init(connection: OpaquePointer) {
            self.connection = connection
        }

        enum ValueKind {
            case header

            var mhdKind: MHD_ValueKind {
                switch self {
                case .header: .HEADER_KIND
                }
            }
        }

        func value(of key: String, kind: ValueKind) -> String? {
            guard isHandlerActive else { return nil }
            // Explicit withCString: a short (inline) Swift string passed implicitly to a C pointer
            // parameter is copied to the heap first; this way it is copied to the stack.
            return key.withCString { key in
                MHD_lookup_connection_value(connection, kind.mhdKind, key).map { String(cString: $0) }
            }
        }

        func withValue<Result, Failure: Error>(
            of key: StaticString,
            kind: ValueKind,
            _ body: (UnsafeBufferPointer<UInt8>?) throws(Failure) -> Result
        ) throws(Failure) -> Result {
            guard isHandlerActive else { return try body(nil) }
            var value: UnsafePointer<CChar>?
            var size = 0
            // A StaticString's bytes are immortal; CChar and UInt8 may alias each other.
            let keyBytes = UnsafeRawPointer(key.utf8Start).assumingMemoryBound(to: CChar.self)
            guard MHD_lookup_connection_value_n(connection, kind.mhdKind, keyBytes, key.utf8CodeUnitCount, &value, &size) == .YES,
                let value
            else { return try body(nil) }
            return try body(UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: size))
        }

        func queryParameter(_ name: String) -> String? {
            withQueryParameter(name) { value in value.map { String(decoding: $0, as: UTF8.self) } }
        }

        /// Calls `body` with the decoded bytes of the first query parameter named exactly `name`
        /// (`nil` when absent); the buffer points into libmicrohttpd's memory.
        func withQueryParameter<Result, Failure: Error>(
            _ name: String,
            _ body: (UnsafeRawBufferPointer?) throws(Failure) -> Result
        ) throws(Failure) -> Result {
            guard isHandlerActive else { return try body(nil) }
            // MHD_lookup_connection_value compares keys case-insensitively; query names are case-sensitive.
            // The search state lives on the stack: this runs on every request that reads a parameter.
            var name = name
            let value = name.withUTF8 { nameBytes -> UnsafeRawBufferPointer? in
                var search = QueryParameterSearch(name: nameBytes, value: nil)
                withUnsafeMutablePointer(to: &search) { searchPointer in
                    _ = MHD_get_connection_values_n(
                        connection,
                        .GET_ARGUMENT_KIND,
                        { cls, _, key, keySize, value, valueSize in
                            let search = cls!.assumingMemoryBound(to: QueryParameterSearch.self)
                            let keyBytes = UnsafeRawBufferPointer(start: key, count: keySize)
                            guard keyBytes.elementsEqual(search.pointee.name) else { return .YES }
                            search.pointee.value = UnsafeRawBufferPointer(start: value, count: valueSize)
                            return .NO
                        },
                        UnsafeMutableRawPointer(searchPointer)
                    )
                }
                return search.value
            }
            return try body(value)
        }

        func queryParameters() -> [(name: String, value: String)] {
            guard isHandlerActive else { return [] }
            final class Collector {
                var pairs: [(name: String, value: String)] = []
            }
            let collector = Collector()
            withExtendedLifetime(collector) {
                _ = MHD_get_connection_values_n(
                    connection,
                    .GET_ARGUMENT_KIND,
                    { cls, _, key, keySize, value, valueSize in
                        let collector = Unmanaged<Collector>.fromOpaque(cls!).takeUnretainedValue()
                        collector.pairs.append(
                            (
                                name: String(decoding: UnsafeRawBufferPointer(start: key, count: keySize), as: UTF8.self),
                                value: String(decoding: UnsafeRawBufferPointer(start: value, count: valueSize), as: UTF8.self)
                            )
                        )
                        return .YES
                    },
                    Unmanaged.passUnretained(collector).toOpaque()
                )
            }
            return collector.pairs
        }
    }

    /// The connection of one stream: suspends and resumes it for ``HTTPStreamWriter``.
    ///
    /// `@unchecked Sendable`: `connection` is only used under the writer's lock, while the connection is
    /// alive (a suspended connection cannot be closed by libmicrohttpd, and a resumed one is never touched
    /// again until the next suspend from its own content reader).
    final class StreamConnection: HTTPStreamTransport, @unchecked Sendable {
        private let connection: OpaquePointer
        private let fd: Int32
        private let token: UInt64
        private let monitor: HangupMonitor

        init(connection: OpaquePointer, token: UInt64, monitor: HangupMonitor) {
            self.connection = connection
            self.fd = CMicroHTTPD_connection_fd(connection)
            self.token = token
            self.monitor = monitor
        }

        func park() {
            MHD_suspend_connection(connection)
            monitor.watch(fd: fd, token: token)
        }

        func unpark() {
            monitor.unwatch(fd: fd)
            MHD_resume_connection(connection)
        }
    }

    /// What the content reader's `cls` points to (retained until the free callback).
    final class StreamBinding {
        let writer: HTTPStreamWriter
        let token: UInt64
        let registry: StreamRegistry

        init(writer: HTTPStreamWriter, token: UInt64, registry: StreamRegistry) {
            self.writer = writer
            self.token = token
            self.registry = registry
        }
    }
}

// MARK: - C callbacks

/// `CMicroHTTPD_LogSink`: receives one formatted libmicrohttpd log line.
private func logSink(_ cls: UnsafeMutableRawPointer?, _ message: UnsafePointer<CChar>?) {
    guard let cls, let message else { return }
    let context = Unmanaged<MHDDaemon.Context>.fromOpaque(cls).takeUnretainedValue()
    var text = String(cString: message)
    while text.last == "\n" {
        text.removeLast()
    }
    context.log("libmicrohttpd: " + text)
}

/// `MHD_OPTION_UNESCAPE_CALLBACK`: percent-decodes the URL path and each query argument in place, as
/// libmicrohttpd's own decoder does (`%XY` with two hex digits becomes that byte; anything else is kept),
/// except that `%00` becomes `0xFF`.
///
/// The handler receives the path as a C string, so a decoded NUL would cut it short:
/// `DELETE /v1/sessions%00/x?confirm=true` reached the handler as `DELETE /v1/sessions`. `0xFF` is
/// never valid UTF-8, so such a path is reported invalid (``HTTPRequest/pathIsValidUTF8``) instead.
/// A raw NUL byte in the target is caught before decoding (``uriLogged(_:_:_:)``).
/// Returns the new length, and ends the string with a NUL.
///
/// `microhttpd.h` names no type for it: `size_t (*)(void *cls, struct MHD_Connection *c, char *s)`.
private typealias UnescapeCallback = @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int

private func percentDecode(_ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ text: UnsafeMutablePointer<CChar>?) -> Int {
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

/// The state of one query-parameter lookup (``MHDDaemon/RequestContext/withQueryParameter(_:_:)``).
private struct QueryParameterSearch {
    let name: UnsafeBufferPointer<UInt8>
    var value: UnsafeRawBufferPointer?
}

/// `MHD_OPTION_URI_LOG_CALLBACK`: `void *(*)(void *cls, const char *uri, struct MHD_Connection *c)`.
private typealias URILogCallback = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer?

/// `MHD_OPTION_URI_LOG_CALLBACK`: measures the raw request target, before libmicrohttpd splits off the
/// query and decodes it.
///
/// libmicrohttpd 0.9.75 accepts a raw NUL byte in the request line, and every later step (the query
/// split aside) treats the target as a C string: `DELETE /v1/sessions<NUL>/x?confirm=true` reached the
/// handler as `DELETE /v1/sessions`. The target was terminated at the space before the HTTP version, so
/// its C-string length here falls short of that space exactly when it holds a NUL; the access handler
/// compares. The length travels as libmicrohttpd's initial request context, tagged odd (`2n + 1`) so that
/// it is never taken for a ``MHDDaemon/RequestContext`` (objects are aligned, their addresses even).
private func uriLogged(_ cls: UnsafeMutableRawPointer?, _ uri: UnsafePointer<CChar>?, _ connection: OpaquePointer?) -> UnsafeMutableRawPointer? {
    let length = uri.map { strlen($0) } ?? 0
    return UnsafeMutableRawPointer(bitPattern: UInt(length) << 1 | 1)
}

/// The target length measured by ``uriLogged(_:_:_:)``, if `pointer` is its tag.
private func loggedTargetLength(_ pointer: UnsafeMutableRawPointer?) -> Int? {
    guard let pointer, UInt(bitPattern: pointer) & 1 == 1 else { return nil }
    return Int(UInt(bitPattern: pointer) >> 1)
}

/// `MHD_OPTION_NOTIFY_COMPLETED`: releases the request context.
private func requestCompleted(
    _ cls: UnsafeMutableRawPointer?,
    _ connection: OpaquePointer?,
    _ requestContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ termination: MHD_RequestTerminationCode
) {
    guard let cls, let requestContext, let pointer = requestContext.pointee else { return }
    requestContext.pointee = nil
    // A request that never reached the access handler still holds the target-length tag.
    guard loggedTargetLength(pointer) == nil else { return }
    let request = Unmanaged<MHDDaemon.RequestContext>.fromOpaque(pointer).takeRetainedValue()
    let context = Unmanaged<MHDDaemon.Context>.fromOpaque(cls).takeUnretainedValue()
    if let deferred = request.deferred {
        // The connection is about to go: a late respond() must not touch it.
        deferred.responder.connectionEnded()
        context.deferred.remove(deferred.token)
    }
    context.inFlight.subtract(1, ordering: .releasing)
}

/// Whether the raw request target held a NUL byte: its C-string length, measured before libmicrohttpd
/// modified it (``uriLogged(_:_:_:)``), stops short of the space before the HTTP version. libmicrohttpd
/// parses the request line in place, so `url` is where the target began and `version` follows that space.
private func targetHasNUL(url: UnsafePointer<CChar>?, version: UnsafePointer<CChar>?, loggedLength: Int?) -> Bool {
    guard let url, let version, let loggedLength, version.pointee != 0, version > url else { return false }
    let targetEnd = version - 1  // the space, replaced by a NUL
    guard targetEnd - url <= 1 << 24 else { return false }  // not the same buffer: no conclusion
    return url + loggedLength != targetEnd
}

/// Whether the method held a raw NUL byte. libmicrohttpd ends the method at the first space and the
/// target starts after the spaces that follow, so between the method's C-string end and the target
/// there is that space's NUL and spaces only, unless the method went on past a NUL of its own:
/// `DELETE<NUL>X /v1/sessions` reached the handler as `DELETE`.
private func methodHasNUL(method: UnsafePointer<CChar>?, url: UnsafePointer<CChar>?) -> Bool {
    guard let method, let url, url > method, url - method <= 1 << 16 else { return false }
    var cursor = method + strlen(method) + 1
    while cursor < url {
        if cursor.pointee != 0x20 { return true }
        cursor += 1
    }
    return false
}

/// `MHD_AccessHandlerCallback`.
private func accessHandler(
    _ cls: UnsafeMutableRawPointer?,
    _ connection: OpaquePointer?,
    _ url: UnsafePointer<CChar>?,
    _ method: UnsafePointer<CChar>?,
    _ version: UnsafePointer<CChar>?,
    _ uploadData: UnsafePointer<CChar>?,
    _ uploadDataSize: UnsafeMutablePointer<Int>?,
    _ requestContextPointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let uploadDataSize, let requestContextPointer else { return .NO }
    let context = Unmanaged<MHDDaemon.Context>.fromOpaque(cls).takeUnretainedValue()

    let initial = requestContextPointer.pointee
    guard let existing = initial, loggedTargetLength(existing) == nil else {
        // First call: headers only. Do not answer yet (an early response loses keep-alive), except for a
        // declared body that is too large; see ``bodyTooLarge(_:request:context:receivedSoFar:)``.
        let request = MHDDaemon.RequestContext(connection: connection)
        request.targetHasNUL = targetHasNUL(url: url, version: version, loggedLength: loggedTargetLength(initial))
        request.methodHasNUL = methodHasNUL(method: method, url: url)
        requestContextPointer.pointee = Unmanaged.passRetained(request).toOpaque()
        context.inFlight.add(1, ordering: .relaxed)
        if let lengthText = MHD_lookup_connection_value(connection, .HEADER_KIND, "Content-Length") {
            let declared = Int(String(cString: lengthText)) ?? 0
            if declared > context.maxBodySize {
                let expectsContinue = MHD_lookup_connection_value(connection, .HEADER_KIND, "Expect")
                    .map { String(cString: $0).lowercased().contains("100-continue") } ?? false
                if expectsContinue {
                    // The client waits for "100 Continue" before sending the body: refuse now, it reads
                    // the answer cleanly and sends nothing more.
                    request.hasResponded = true
                    return queueBodyTooLarge(connection, context: context)
                }
                return bodyTooLarge(connection, request: request, context: context, receivedSoFar: 0, declared: declared)
            }
            if declared > 0 {
                // Capped: a declared length costs nothing to send, so it must not reserve much memory.
                request.body.reserveCapacity(min(declared, 64 * 1024))
            }
        }
        return .YES
    }
    let request = Unmanaged<MHDDaemon.RequestContext>.fromOpaque(existing).takeUnretainedValue()

    if let deferred = request.deferred {
        // HTTPResponder.respond resumed the connection, and libmicrohttpd runs the final call again.
        guard let response = deferred.responder.takeResponse() else {
            // Already taken: the earlier queueing did not happen (libmicrohttpd stopping). Close.
            if !context.shuttingDown.load(ordering: .relaxed) {
                context.log("MicroHTTP: deferred request resumed without a response; closing the connection")
            }
            return .NO
        }
        return queueDeferredAnswer(connection, response, acceptEncoding: deferred.acceptEncoding, context: context)
    }

    let chunkSize = uploadDataSize.pointee
    if chunkSize > 0 {
        uploadDataSize.pointee = 0
        if request.hasResponded {
            return .YES
        }
        if let discarded = request.discardedBytes {
            return bodyTooLarge(connection, request: request, context: context, receivedSoFar: discarded + chunkSize)
        }
        if request.body.count + chunkSize > context.maxBodySize {
            let received = request.body.count + chunkSize
            request.body = []
            return bodyTooLarge(connection, request: request, context: context, receivedSoFar: received)
        }
        request.body.append(contentsOf: UnsafeRawBufferPointer(start: uploadData, count: chunkSize))
        return .YES
    }
    if request.hasResponded {
        return .YES
    }
    request.hasResponded = true
    if request.discardedBytes != nil {
        // The whole (too large) body has been read and dropped; answer now, the client is listening.
        return queueBodyTooLarge(connection, context: context)
    }

    // A method cut short at a NUL is not that method: "DELETE\u{FFFD}" is answered 405.
    let methodName = method.map { String(cString: $0) + (request.methodHasNUL ? "\u{FFFD}" : "") } ?? "GET"
    let validPath = url.flatMap { String(validatingCString: $0) }
    let httpRequest = HTTPRequest(
        method: methodName,
        path: validPath ?? url.map { String(cString: $0) } ?? "/",
        pathIsValidUTF8: (validPath != nil || url == nil) && !request.targetHasNUL,
        body: request.body,
        connection: request
    )
    request.body = []
    request.isHandlerActive = true
    var response = context.handler.handle(httpRequest)
    if case .deferred(let deferred) = response.body {
        // The outer status and headers are ignored. Accept-Encoding is read now: the request is only valid
        // during handle().
        let acceptEncoding = httpRequest.header("Accept-Encoding")
        request.isHandlerActive = false
        return startDeferred(connection, request: request, deferred, acceptEncoding: acceptEncoding, context: context)
    }
    if !(100...999).contains(response.status) {
        context.log("MicroHTTP: handler returned invalid status \(response.status); sending 500")
        response = .error(status: 500, code: "internal_error", message: "The handler returned an invalid status.")
    }
    let result: MHD_Result
    switch response.body {
    case .bytes(let bytes):
        result = queueComplete(
            connection,
            status: response.status,
            headers: response.headers,
            body: bytes,
            compressIfAccepted: response.compressIfAccepted,
            acceptsGzip: httpRequest.acceptsGzip,
            context: context
        )
        request.isHandlerActive = false
    case .deferred:
        // Handled above.
        request.isHandlerActive = false
        result = .NO
    case .stream(let configuration):
        request.isHandlerActive = false
        if methodName == "HEAD" {
            // No stream for HEAD. An empty buffer, not a chunked callback response: libmicrohttpd 0.9.75
            // writes the terminating "0\r\n\r\n" chunk even for HEAD, which corrupts keep-alive.
            result = queueBuffer(connection, status: response.status, headers: response.headers, body: [], context: context)
        } else {
            result = queueStream(connection, status: response.status, headers: response.headers, configuration, context: context)
        }
    }
    return result
}

/// The answer to deferred requests still waiting when a shutdown's grace period is over.
private let shuttingDownResponse = HTTPResponse.error(
    status: 503,
    code: "shutting_down",
    message: "The server is shutting down."
)

/// Suspends the connection of a deferred response, then hands its responder to `start`.
///
/// The suspend comes first (under the responder's lock), so no `respond` can resume the connection before
/// it is suspended, even one made synchronously inside `start`. The access handler returns `MHD_YES`
/// without a response; libmicrohttpd calls it again once the connection is resumed.
private func startDeferred(
    _ connection: OpaquePointer,
    request: MHDDaemon.RequestContext,
    _ deferred: HTTPDeferredResponse,
    acceptEncoding: String?,
    context: MHDDaemon.Context
) -> MHD_Result {
    let responder = HTTPResponder(transport: MHDDaemon.DeferredConnection(connection: connection))
    responder.suspend()
    let (token, accepted) = context.deferred.insert(responder)
    request.deferred = MHDDaemon.DeferredRequest(responder: responder, token: token, acceptEncoding: acceptEncoding)
    if !accepted {
        // The shutdown has answered every waiting request already and is about to stop the daemon.
        responder.respond(shuttingDownResponse)
    }
    deferred.start(responder)
    return .YES
}

/// Queues the response given to ``HTTPResponder/respond(_:)``, treated like a handler's complete response.
private func queueDeferredAnswer(
    _ connection: OpaquePointer,
    _ response: HTTPResponse,
    acceptEncoding: String?,
    context: MHDDaemon.Context
) -> MHD_Result {
    var response = response
    if !(100...999).contains(response.status) {
        context.log("MicroHTTP: deferred response has invalid status \(response.status); sending 500")
        response = .error(status: 500, code: "internal_error", message: "The handler returned an invalid status.")
    }
    let body: [UInt8]
    switch response.body {
    case .bytes(let bytes):
        body = bytes
    case .stream, .deferred:
        context.log("MicroHTTP: a deferred request was answered with a stream or deferred body; sending 500")
        response = .error(
            status: 500,
            code: "internal_error",
            message: "A deferred request can only be answered with a complete body."
        )
        guard case .bytes(let bytes) = response.body else { return .NO }
        body = bytes
    }
    return queueComplete(
        connection,
        status: response.status,
        headers: response.headers,
        body: body,
        compressIfAccepted: response.compressIfAccepted,
        acceptsGzip: acceptEncoding.map(AcceptEncoding.allowsGzip) ?? false,
        context: context
    )
}

/// Queues a complete body: gzipped when `compressIfAccepted` and the client accepts it (and the body is
/// large enough), with `Vary: Accept-Encoding` whenever `compressIfAccepted`.
private func queueComplete(
    _ connection: OpaquePointer,
    status: Int,
    headers: [(name: String, value: String)],
    body: [UInt8],
    compressIfAccepted: Bool,
    acceptsGzip: @autoclosure () -> Bool,
    context: MHDDaemon.Context
) -> MHD_Result {
    var body = body
    var gzipped = false
    if compressIfAccepted && body.count >= HTTPResponse.compressionThreshold && acceptsGzip() {
        do {
            body = try Gzip.compress(body)
            gzipped = true
        } catch {
            context.log("MicroHTTP: gzip failed (\(error)); sending the body uncompressed")
        }
    }
    return queueBuffer(connection, status: status, headers: headers, body: body, context: context) { response in
        if compressIfAccepted { _ = MHD_add_response_header(response, "Vary", "Accept-Encoding") }
        if gzipped { _ = MHD_add_response_header(response, "Content-Encoding", "gzip") }
    }
}

/// How many bytes beyond `maxBodySize` are read and dropped before the 413 is sent anyway.
private let bodyDiscardAllowance = 4 << 20

/// Handles a body above `maxBodySize`.
///
/// Answering while the client is still sending makes the server close a socket with unread data, which
/// the kernel turns into a TCP reset that can destroy the 413 before the client reads it. So a moderately
/// too large body is read and dropped, and the 413 goes out once the body is complete; past
/// ``bodyDiscardAllowance`` (or a declared length that far above the limit) it is sent at once and the
/// client may see a reset instead.
private func bodyTooLarge(
    _ connection: OpaquePointer,
    request: MHDDaemon.RequestContext,
    context: MHDDaemon.Context,
    receivedSoFar: Int,
    declared: Int? = nil
) -> MHD_Result {
    let excess = (declared ?? receivedSoFar) - context.maxBodySize
    if excess > bodyDiscardAllowance {
        request.hasResponded = true
        request.discardedBytes = nil
        return queueBodyTooLarge(connection, context: context)
    }
    request.discardedBytes = receivedSoFar
    return .YES
}

/// Sends the built-in 413 answer and closes the connection afterwards.
private func queueBodyTooLarge(_ connection: OpaquePointer, context: MHDDaemon.Context) -> MHD_Result {
    let response = HTTPResponse.error(
        status: 413,
        code: "body_too_large",
        message: "The request body exceeds \(context.maxBodySize) bytes."
    )
    guard case .bytes(let body) = response.body else { return .NO }
    var headers = response.headers
    headers.append((name: "Connection", value: "close"))
    return queueBuffer(connection, status: 413, headers: headers, body: body, context: context)
}

/// Queues a complete response (`MHD_RESPMEM_MUST_COPY`).
private func queueBuffer(
    _ connection: OpaquePointer,
    status: Int,
    headers: [(name: String, value: String)],
    body: [UInt8],
    context: MHDDaemon.Context,
    addMore: (OpaquePointer) -> Void = { _ in }
) -> MHD_Result {
    let response = body.withUnsafeBytes { bytes in
        MHD_create_response_from_buffer(bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
    }
    guard let response else {
        context.log("MicroHTTP: MHD_create_response_from_buffer failed")
        return .NO
    }
    addHeaders(response, headers, context: context)
    addMore(response)
    let result = MHD_queue_response(connection, UInt32(status), response)
    MHD_destroy_response(response)
    return result
}

/// Queues a streaming response and hands the writer to the stream's `start`.
private func queueStream(
    _ connection: OpaquePointer,
    status: Int,
    headers: [(name: String, value: String)],
    _ configuration: HTTPStreamConfiguration,
    context: MHDDaemon.Context
) -> MHD_Result {
    let token = context.streams.makeToken()
    let transport = MHDDaemon.StreamConnection(connection: connection, token: token, monitor: context.monitor)
    let writer = HTTPStreamWriter(bufferLimit: configuration.bufferLimit, transport: transport)
    let binding = MHDDaemon.StreamBinding(writer: writer, token: token, registry: context.streams)
    let bindingPointer = Unmanaged.passRetained(binding).toOpaque()
    // MHD_SIZE_UNKNOWN: chunked transfer encoding (HTTP/1.1), or close-delimited (HTTP/1.0).
    guard let response = MHD_create_response_from_callback(UInt64.max, 16 * 1024, streamReader, bindingPointer, streamFree) else {
        Unmanaged<MHDDaemon.StreamBinding>.fromOpaque(bindingPointer).release()
        context.log("MicroHTTP: MHD_create_response_from_callback failed")
        return .NO
    }
    if !context.streams.insert(writer, token: token) {
        writer.finish()  // shutting down: the stream ends right after the headers
    }
    addHeaders(response, headers, context: context)
    let result = MHD_queue_response(connection, UInt32(status), response)
    MHD_destroy_response(response)  // if queueing failed this frees the binding (streamFree)
    if result == .YES {
        configuration.start(writer)
    }
    return result
}

private func addHeaders(_ response: OpaquePointer, _ headers: [(name: String, value: String)], context: MHDDaemon.Context) {
    for header in headers {
        // Explicit withCString: see RequestContext.value(of:kind:).
        let added = header.name.withCString { name in
            header.value.withCString { value in MHD_add_response_header(response, name, value) }
        }
        if added != .YES {
            context.log("MicroHTTP: response header \"\(header.name)\" was rejected by libmicrohttpd and dropped")
        }
    }
    if context.shuttingDown.load(ordering: .relaxed) {
        _ = MHD_add_response_header(response, "Connection", "close")
    }
}

/// `MHD_ContentReaderCallback` of streams.
private func streamReader(_ cls: UnsafeMutableRawPointer?, _ position: UInt64, _ buffer: UnsafeMutablePointer<CChar>?, _ maximum: Int) -> Int {
    guard let cls, let buffer, maximum > 0 else { return -2 }
    let binding = Unmanaged<MHDDaemon.StreamBinding>.fromOpaque(cls).takeUnretainedValue()
    switch binding.writer.drain(maximum: maximum, { chunk in
        UnsafeMutableRawPointer(buffer).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count)
    }) {
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
    let binding = Unmanaged<MHDDaemon.StreamBinding>.fromOpaque(cls).takeRetainedValue()
    binding.registry.remove(binding.token)
    binding.writer.connectionEnded()
}

internal import CMicroHTTPD
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Owns one libmicrohttpd daemon (`struct MHD_Daemon *`): starts it with its options and callbacks,
/// and stops it.
///
/// What happens to each request is ``RequestContext``'s concern; the C callbacks are in
/// ``MHDCallbacks``, responses in ``MHDResponse``.
///
/// Shutdown: quiesce, finish the streams, wait for the requests in flight (deferred ones included) up to
/// the grace period, answer every deferred request still waiting with a 503 (``HTTPServerError/shuttingDown``),
/// wait briefly for those answers to be sent, then `MHD_stop_daemon`. No connection is suspended by then:
/// libmicrohttpd panics on a suspended connection at stop, and closes a resumed one that it has not
/// processed yet without sending its response.
///
/// `@unchecked Sendable`: the daemon pointer never changes, and the calls made through it
/// (`MHD_quiesce_daemon`, `MHD_stop_daemon`) happen once, by the caller that moved ``lifecycle`` from
/// running to stopping.
final class MHDDaemon: @unchecked Sendable {
    private enum Lifecycle {
        case running
        case stopping
        case stopped
    }

    private let daemon: OpaquePointer
    private let server: ServerContext
    /// The logger's C closure; freed after `MHD_stop_daemon`.
    private let logger: UnsafeMutablePointer<CMicroHTTPD_Logger>
    private let lifecycle = Mutex(Lifecycle.running)
    /// Entered while the daemon runs; concurrent ``shutdown(gracePeriod:)`` callers wait on it.
    private let running = DispatchGroup()

    /// The bound TCP port.
    let port: Int

    /// See ``HTTPServer/connectionStatistics``.
    var connectionStatistics: HTTPConnectionStatistics {
        server.connections.statistics
    }

    /// How long a shutdown waits, after the grace period, for the 503 answers of deferred requests to go out.
    static let deferredDrainLimit = Duration.seconds(1)

    /// Starts the daemon.
    init(configuration: HTTPServerConfiguration, handler: any HTTPHandler) throws {
        try configuration.validate()
        Self.suppressSIGPIPEIfNeeded()
        var address = sockaddr_storage()
        let addressIsIPv6 = try Self.makeAddress(host: configuration.host, port: configuration.port, into: &address)
        let server = try ServerContext(configuration: configuration, handler: handler)

        var flags =
            MHD_USE_EPOLL.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_ITC.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        if addressIsIPv6 {
            flags |= MHD_USE_IPv6.rawValue
        }
        if configuration.tls != nil {
            flags |= MHD_USE_TLS.rawValue
        }
        let serverPointer = Unmanaged.passRetained(server).toOpaque()
        let logger = UnsafeMutablePointer<CMicroHTTPD_Logger>.allocate(capacity: 1)
        logger.initialize(to: CMicroHTTPD_Logger(sink: MHDCallbacks.logSink, cls: serverPointer))
        let started: OpaquePointer? = withUnsafeMutablePointer(to: &address) { addressPointer in
            let options = Self.options(configuration, server: serverPointer, logger: logger, address: addressPointer)
            return options.withUnsafeBufferPointer { optionArray in
                CMicroHTTPD_start_daemon(
                    flags,
                    0,
                    MHDCallbacks.acceptPolicy,
                    serverPointer,
                    MHDCallbacks.access,
                    serverPointer,
                    optionArray.baseAddress
                )
            }
        }
        let startupLog = server.endStartupCapture()

        guard let started else {
            Unmanaged<ServerContext>.fromOpaque(serverPointer).release()
            logger.deinitialize(count: 1)
            logger.deallocate()
            server.monitor.stop()
            server.connections.stop()
            throw Self.startError(configuration, log: startupLog)
        }
        self.daemon = started
        self.server = server
        self.logger = logger
        self.port = Int(CMicroHTTPD_bound_port(started))
        running.enter()
    }

    deinit {
        shutdown(gracePeriod: .zero)
    }

    /// Stops accepting, waits up to `gracePeriod` for in-flight requests, ends open streams, stops the
    /// daemon. Idempotent; concurrent callers return once the daemon has stopped.
    func shutdown(gracePeriod: Duration) {
        let isFirst = lifecycle.withLock { state -> Bool in
            guard case .running = state else { return false }
            state = .stopping
            return true
        }
        guard isFirst else {
            running.wait()
            return
        }
        server.beginShutdown()
        // Stop accepting. The listen socket is ours to close, but only after MHD_stop_daemon.
        let listenSocket = MHD_quiesce_daemon(daemon)

        // No new stream can start from now on; open ones end after sending what is pending. Closing a
        // stream resumes it if it was suspended, and a closed stream never suspends again, so
        // MHD_stop_daemon below cannot find a suspended connection (that would be an MHD_PANIC).
        server.streams.closeAll()
        _ = server.waitUntilNoRequestInFlight(timeout: gracePeriod)

        // Deferred requests still waiting are answered now, and later ones at once, which resumes their
        // connections: MHD_stop_daemon must not find a suspended connection (MHD_PANIC). A resumed
        // connection that libmicrohttpd has not processed yet would be closed by MHD_stop_daemon without
        // its answer, so wait (briefly) until the deferred requests have completed.
        server.deferred.closeAll(answeringWith: server.errorResponse(.shuttingDown))
        _ = server.deferred.waitUntilEmpty(timeout: Self.deferredDrainLimit)

        server.monitor.stop()
        MHD_stop_daemon(daemon)
        server.connections.stop()
        if listenSocket >= 0 {
            close(listenSocket)
        }
        logger.deinitialize(count: 1)
        logger.deallocate()
        Unmanaged.passUnretained(server).release()
        lifecycle.withLock { $0 = .stopped }
        running.leave()
    }

    /// The option array of `MHD_start_daemon` (ends with `MHD_OPTION_END`).
    private static func options(
        _ configuration: HTTPServerConfiguration,
        server: UnsafeMutableRawPointer,
        logger: UnsafeMutablePointer<CMicroHTTPD_Logger>,
        address: UnsafeMutablePointer<sockaddr_storage>
    ) -> [MHD_OptionItem] {
        func item(_ option: MHD_OPTION, _ value: Int, _ pointer: UnsafeMutableRawPointer? = nil) -> MHD_OptionItem {
            MHD_OptionItem(option: option, value: value, ptr_value: pointer)
        }
        var options: [MHD_OptionItem] = [
            // The logger goes first so that start-up messages reach it too.
            CMicroHTTPD_logger_option(logger),
            item(.NOTIFY_COMPLETED, unsafeBitCast(MHDCallbacks.completed, to: Int.self), server),
            item(.SOCK_ADDR, 0, UnsafeMutableRawPointer(address)),
            item(.URI_LOG_CALLBACK, unsafeBitCast(MHDCallbacks.uriLog, to: Int.self), server),
            item(.NOTIFY_CONNECTION, unsafeBitCast(MHDCallbacks.connectionNotification, to: Int.self), server),
            item(.UNESCAPE_CALLBACK, unsafeBitCast(MHDCallbacks.unescape, to: Int.self)),
            // ConnectionGuard enforces the limit (and counts what it refuses). libmicrohttpd's own limit
            // is split between its threads, and a thread at it stops accepting (new connections would
            // wait in the kernel's queue): each thread may hold one more than the whole limit.
            item(
                .CONNECTION_LIMIT,
                min((configuration.connectionLimit + 1) * configuration.threadCount, Int(Int32.max))
            ),
            item(.CONNECTION_TIMEOUT, Int(configuration.connectionTimeoutSeconds)),
            item(.CONNECTION_MEMORY_LIMIT, configuration.connectionMemoryLimit),
        ]
        if configuration.threadCount > 1 {
            options.append(item(.THREAD_POOL_SIZE, configuration.threadCount))
        }
        if configuration.tls != nil {
            options += TLSIdentity.daemonOptions
        }
        options.append(item(.END, 0))
        return options
    }

    /// The error for a daemon that did not start, from what libmicrohttpd logged meanwhile.
    private static func startError(_ configuration: HTTPServerConfiguration, log: [String]) -> MicroHTTPError {
        let details = log.joined(separator: " ")
        let endpoint = "\(configuration.host) port \(configuration.port)"
        if details.contains("in use") {
            return MicroHTTPError(
                code: .addressInUse,
                message: "cannot listen on \(endpoint): address already in use (\(details))",
                cause: EADDRINUSE
            )
        }
        return MicroHTTPError(
            code: .startFailed,
            message: "libmicrohttpd could not start on \(endpoint)" + (details.isEmpty ? "" : ": \(details)")
        )
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

import ArgumentParser
import Logging
import MicroHTTP
import ServiceLifecycle
import SessionCore
import SessionMetrics
import SessionServer
import SessionStorage
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `sessiond`: the session service. Every option has an environment twin `SESSIOND_<NAME>`
/// (command-line flags win over the environment).
@main
struct Sessiond: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessiond",
        abstract: "users-session-manager: the session service (HTTP API over libmicrohttpd).",
        discussion: """
            Every option can also be set with an environment variable: SESSIOND_ + the option name in upper \
            snake case (--idle-timeout → SESSIOND_IDLE_TIMEOUT). Flags on the command line win. The API token \
            can come from --api-token-file or from SESSIOND_API_TOKEN (never from a flag: command lines are \
            visible to other users). Without an API token sessiond only listens on loopback addresses.
            """
    )

    @Option(help: "Address to listen on (IPv4 or IPv6 literal, or localhost).")
    var host = "127.0.0.1"

    @Option(help: "TCP port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "HTTP worker threads (libmicrohttpd thread pool).")
    var threads = HTTPServerConfiguration.defaultThreadCount

    @Option(help: "Default idle timeout of sessions, in seconds (≥ 2; sliding).")
    var idleTimeout: Double = 3000

    @Option(help: "Default absolute lifetime of sessions, in seconds.")
    var maxLifetime: Double = 86_400

    @Option(help: "Most live sessions per user (default: unlimited).")
    var maxSessionsPerUser: Int?

    @Option(help: "At the per-user cap: reject the new session, or evict_oldest.")
    var sessionLimitPolicy = "evict_oldest"

    @Option(help: "Largest session data, in bytes of JSON.")
    var maxDataBytes = 16 * 1024

    @Option(help: "Largest request body, in bytes (413 above).")
    var maxBodyBytes = 64 * 1024

    @Option(help: "Request line plus headers budget, in bytes: always served up to it in lines of 64 bytes or more; 431 when far above.")
    var maxHeaderBytes = 8 * 1024

    @Option(help: "Most simultaneous connections.")
    var connectionLimit = 1024

    @Option(help: "Seconds after which an idle or stalled connection is closed.")
    var connectionTimeout: Double = 30

    @Option(help: "Most simultaneous /v1/events subscribers.")
    var maxEventSubscribers = 1000

    @Option(help: "Serve /metrics on this separate host:port only (e.g. 127.0.0.1:9100) instead of the API port.")
    var metricsAddress: String?

    @Option(help: "File holding the API token that /v1 routes require (Authorization: Bearer).")
    var apiTokenFile: String?

    @Option(help: "Where sessions live: sqlite (durable, in --data-dir) or memory (lost on restart; tests, benchmarks).")
    var storage = "sqlite"

    @Option(help: "Directory of the SQLite storage (created if missing; locked while sessiond runs).")
    var dataDir = "./data"

    @Option(
        help: """
            When writes are acknowledged: commit (after the commit that holds them reached the OS; nothing \
            acknowledged is lost when sessiond crashes or is killed; flushed to disk every 250 ms), fsync (after \
            the commit is also flushed to disk; survives power loss) or interval (at once, committed every \
            100 ms; a crash can lose the last 100 ms).
            """
    )
    var durability = "commit"

    @Option(help: "Seconds to let in-flight requests finish at shutdown.")
    var shutdownGrace: Double = 10

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    mutating func run() async throws {
        let level = try parse(Logger.Level.self, "--log-level", logLevel)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sessiond")
        do {
            try await serve(logger: logger)
        } catch let error as StartupError {
            logger.critical("sessiond cannot start", metadata: ["error": "\(error.message)"])
            throw ExitCode(2)
        }
    }

    /// `seconds` as whole milliseconds (rounded up, so that a tiny positive value stays positive), after
    /// checking that it is a finite number in `range`; otherwise a startup error naming `flag`.
    static func milliseconds(_ seconds: Double, _ flag: String, within range: ClosedRange<Double>) throws -> Int64 {
        guard seconds.isFinite, range.contains(seconds) else {
            func text(_ value: Double) -> String { value == value.rounded() ? String(Int64(value)) : String(value) }
            throw StartupError(
                message: "\(flag) must be a number of seconds from \(text(range.lowerBound)) to \(text(range.upperBound)), not \(seconds)"
            )
        }
        return Int64((seconds * 1000).rounded(.up))
    }

    private func serve(logger: Logger) async throws {
        let apiToken = try loadAPIToken(logger: logger)
        guard apiToken != nil || Self.isLoopback(host) else {
            throw StartupError(
                message: "refusing to listen on \(host) without an API token: set --api-token-file or SESSIOND_API_TOKEN, "
                    + "or listen on a loopback address (127.0.0.1, ::1)"
            )
        }
        let policy = try parse(SessionStore.SessionLimitPolicy.self, "--session-limit-policy", sessionLimitPolicy)
        // Checked before any conversion: Int64(Double) traps on inf, nan and out-of-range values, and
        // ArgumentParser accepts "inf", "nan" and "1e400" as Doubles.
        let idle = try Self.milliseconds(idleTimeout, "--idle-timeout", within: 0...315_360_000)
        let lifetime = try Self.milliseconds(maxLifetime, "--max-lifetime", within: 0...315_360_000)
        let connectionTimeoutMilliseconds = try Self.milliseconds(connectionTimeout, "--connection-timeout", within: 0.001...86_400)
        let grace = Duration.milliseconds(try Self.milliseconds(shutdownGrace, "--shutdown-grace", within: 0...3600))
        let storeConfiguration = SessionStore.Configuration(
            idleTimeout: .milliseconds(idle),
            maxLifetime: .milliseconds(lifetime),
            maxSessionsPerUser: maxSessionsPerUser,
            sessionLimitPolicy: policy,
            maxDataBytes: maxDataBytes
        )
        do {
            try storeConfiguration.validate()
        } catch {
            throw StartupError(message: error.message)
        }
        guard maxBodyBytes >= 1024 else { throw StartupError(message: "--max-body-bytes must be at least 1024") }

        let backend = try parse(StorageBackend.self, "--storage", storage)
        let durabilityMode = try parse(SessionStorage.Durability.self, "--durability", durability)
        let sessionStorage: SessionStorage?
        if backend == .sqlite {
            do {
                sessionStorage = try SessionStorage(
                    configuration: .init(dataDirectory: dataDir, durability: durabilityMode),
                    logger: Logger(label: "sessiond.storage")
                )
            } catch {
                throw StartupError(message: "storage: \(error.code.rawValue): \(error.message)")
            }
        } else {
            sessionStorage = nil
        }

        let store = SessionStore(configuration: storeConfiguration)
        if logger.logLevel <= .debug {
            store.events.addObserver { event in
                // Ids and usernames only: events never carry tokens.
                switch event.kind {
                case .created:
                    logger.debug("session created", metadata: ["session.id": "\(event.id)", "user": "\(event.username)"])
                case .ended(let reason):
                    logger.debug(
                        "session ended",
                        metadata: ["session.id": "\(event.id)", "user": "\(event.username)", "reason": "\(reason.rawValue)"]
                    )
                }
            }
        }
        let metrics = SessionMetrics(store: store, routes: Route.catalogue)
        if let sessionStorage {
            metrics.addRefresh(StorageMetrics(storage: sessionStorage, registry: metrics.registry).refresh)
        }
        let endpoint = MetricsEndpoint(metrics: metrics)
        let api = SessionAPI(
            store: store,
            storage: sessionStorage,
            configuration: .init(apiToken: apiToken, maximumEventSubscribers: maxEventSubscribers),
            metricsHandler: metricsAddress == nil ? endpoint.handle : nil,
            observer: { [routeIndices = Route.all.map { metrics.routeIndex(of: $0.template) }] route, method, status, duration in
                let routeIndex = route.map { routeIndices[$0.ordinal] } ?? metrics.routeIndex(of: nil)
                metrics.recordRequest(routeIndex: routeIndex, method: method, status: status, duration: duration)
            }
        )
        let httpLogger = logger
        let server: HTTPServer
        do {
            server = try HTTPServer(
                configuration: HTTPServerConfiguration(
                    host: host == "localhost" ? "127.0.0.1" : host,
                    port: port,
                    threadCount: threads,
                    connectionLimit: connectionLimit,
                    connectionTimeout: .milliseconds(connectionTimeoutMilliseconds),
                    maxBodySize: maxBodyBytes,
                    maxHeaderBytes: maxHeaderBytes,
                    errorLog: { message in httpLogger.notice("libmicrohttpd", metadata: ["message": "\(message)"]) }
                ),
                handler: api
            )
        } catch let error as MicroHTTPError {
            throw StartupError(message: error.message)
        }
        var metricsServer: HTTPServer?
        var metricsLocation = "/metrics on the API port"
        if let metricsAddress {
            guard let colon = metricsAddress.lastIndex(of: ":"), let metricsPort = Int(metricsAddress[metricsAddress.index(after: colon)...]) else {
                throw StartupError(message: "--metrics-address must be host:port, e.g. 127.0.0.1:9100")
            }
            let metricsHost = String(metricsAddress[..<colon]).trimmingCharacters(in: "[]")
            do {
                metricsServer = try HTTPServer(
                    configuration: HTTPServerConfiguration(host: metricsHost, port: metricsPort, threadCount: 1, connectionLimit: 64),
                    handler: endpoint.standaloneHandler
                )
            } catch let error as MicroHTTPError {
                throw StartupError(message: "metrics listener: \(error.message)")
            }
            metricsLocation = "http://\(metricsAddress[..<colon]):\(metricsServer?.port ?? metricsPort)/metrics"
        }
        var storageMetadata: Logger.Metadata = ["storage": "memory (sessions are lost on restart)"]
        if let sessionStorage {
            let replay: ReplayReport
            do {
                replay = try replayStorage(sessionStorage, into: store, port: server.port, logger: logger)
            } catch {
                server.shutdown(gracePeriod: .zero)
                metricsServer?.shutdown(gracePeriod: .zero)
                sessionStorage.close()
                throw StartupError(message: "storage: \(error.code.rawValue): \(error.message)")
            }
            store.attachJournal(sessionStorage)
            sessionStorage.start()
            storageMetadata = [
                "storage": "sqlite",
                "data_dir": "\(dataDir)",
                "durability": "\(durabilityMode.rawValue)",
                "restored": "\(replay.restored)",
                "expired_while_down": "\(replay.expiredCount)",
                "replay_ms": "\(replay.duration.milliseconds)",
                "previous_shutdown": "\(replay.previousShutdownWasClean ? "clean" : "unclean (crash or kill -9)")",
            ]
        }
        let startupMessage: Logger.Message = "sessiond listening on http://\(host.contains(":") ? "[\(host)]" : host):\(server.port)"
        let startupMetadata = storageMetadata.merging([
            "threads": "\(threads)",
            "idle_timeout_s": "\(idleTimeout)",
            "max_lifetime_s": "\(maxLifetime)",
            "max_sessions_per_user": "\(maxSessionsPerUser.map(String.init) ?? "unlimited")",
            "api_token": "\(apiToken == nil ? "none (loopback only)" : "required")",
            "metrics": "\(metricsLocation)",
        ]) { _, new in new }

        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(
                        service: ReadinessService {
                            api.markReady()
                            let stats = store.statistics()
                            logger.info(
                                startupMessage,
                                metadata: startupMetadata.merging([
                                    "sessions": "\(stats.activeSessions)", "users": "\(stats.realtimeUsers)",
                                ]) { _, new in new }
                            )
                        }
                    ),
                    .init(service: ExpiryService(store: store)),
                    .init(service: KeepAliveService(events: api.events)),
                    .init(
                        service: HTTPService(
                            server: server, metricsServer: metricsServer, events: api.events, grace: grace, logger: logger
                        )
                    ),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            sessionStorage?.close()
            throw error
        }
        // The HTTP server has stopped: nothing records changes any more except expiry, which has
        // stopped too. Commit the rest and close the file.
        let lost = sessionStorage?.close() ?? 0
        let final = store.statistics()
        guard lost == 0 else {
            // A supervisor must be able to tell this stop from a clean one.
            logger.critical(
                "sessiond stopped with uncommitted changes lost",
                metadata: ["sessions": "\(final.activeSessions)", "lost_changes": "\(lost)"]
            )
            throw ExitCode(3)
        }
        logger.info("sessiond stopped", metadata: ["sessions": "\(final.activeSessions)"])
    }

    /// Replays storage into the store while the server already answers `/healthz` (and `/readyz`
    /// with 503), logging progress on large tables.
    private func replayStorage(
        _ storage: SessionStorage,
        into store: SessionStore,
        port: Int,
        logger: Logger
    ) throws(StorageError) -> ReplayReport {
        logger.info("replaying storage", metadata: ["file": "\(storage.path)", "port": "\(port)"])
        var nextReport = 250_000
        return try storage.replay(into: store) { read in
            if read >= nextReport {
                logger.info("replaying storage", metadata: ["rows_read": "\(read)"])
                nextReport += 250_000
            }
        }
    }

    private func loadAPIToken(logger: Logger) throws -> APIToken? {
        var secret: String?
        if let path = apiTokenFile {
            guard let contents = Self.readFile(path) else {
                throw StartupError(message: "cannot read the API token file \(path)")
            }
            var status = stat()
            if stat(path, &status) == 0, status.st_mode & 0o077 != 0 {
                logger.warning(
                    "the API token file is readable by other users; restrict it with chmod 600",
                    metadata: ["file": "\(path)"]
                )
            }
            secret = contents
        } else if let value = getenv("SESSIOND_API_TOKEN") {
            secret = String(cString: value)
        }
        guard let secret else { return nil }
        let trimmed = String(secret.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        do {
            return try APIToken(trimmed)
        } catch {
            throw StartupError(message: error.message)
        }
    }

    /// The value of an enumerated flag, or a usage error that lists the accepted values.
    private func parse<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ flag: String, _ text: String) throws -> T
    where T.RawValue == String {
        guard let value = T(rawValue: text) else {
            let accepted = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("invalid value for \(flag): \(text) (one of \(accepted))")
        }
        return value
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static func readFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            bytes += buffer[0..<count]
            if bytes.count > 65536 { return nil }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// Prepends `--name value` for every `SESSIOND_NAME` variable, so that command-line flags (later)
    /// win over the environment.
    static func argumentsWithEnvironment() -> [String] {
        var fromEnvironment: [String] = []
        for option in [
            "host", "port", "threads", "idle-timeout", "max-lifetime", "max-sessions-per-user", "session-limit-policy",
            "max-data-bytes", "max-body-bytes", "max-header-bytes", "connection-limit", "connection-timeout", "max-event-subscribers",
            "metrics-address", "api-token-file", "storage", "data-dir", "durability", "shutdown-grace", "log-level",
        ] {
            let name = "SESSIOND_" + option.uppercased().replacing("-", with: "_")
            if let value = getenv(name) { fromEnvironment += ["--\(option)", String(cString: value)] }
        }
        return fromEnvironment + CommandLine.arguments.dropFirst()
    }

    static func main() async {
        do {
            var command = try parseAsRoot(argumentsWithEnvironment())
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// A configuration problem found before serving.
/// The values of `--storage`.
enum StorageBackend: String, CaseIterable {
    case sqlite
    case memory
}

struct StartupError: Error {
    var message: String
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

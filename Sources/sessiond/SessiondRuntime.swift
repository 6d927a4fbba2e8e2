import ArgumentParser
import Logging
import MicroHTTP
import ServiceLifecycle
import SessionCore
import SessionMetrics
import SessionServer
import SessionStorage

/// One run of sessiond, in four steps: ``build(_:logger:)`` checks the options, opens storage and
/// starts listening (`/healthz` answers, `/readyz` says 503); ``replay()`` restores the stored
/// sessions; ``run()`` serves until SIGTERM or SIGINT; ``close()`` commits what is left.
struct SessiondRuntime {
    let logger: Logger
    let store: SessionStore
    let storage: SessionStorage?
    let api: SessionAPI
    let server: HTTPServer
    let metricsServer: HTTPServer?
    let grace: Duration
    /// The fields of the startup line known once listening.
    let startupMetadata: Logger.Metadata
    let startupMessage: Logger.Message

    /// Checks the options, opens storage, builds the store, metrics and API, and starts listening.
    /// - Throws: ``StartupError`` for a configuration sessiond cannot run with.
    static func build(_ options: Sessiond, logger: Logger) throws -> SessiondRuntime {
        let apiToken = try options.security.apiToken(logger: logger)
        try SecurityOptions.checkExposure(host: options.http.host, apiToken: apiToken)
        let storeConfiguration = try options.sessions.storeConfiguration()
        let grace = try options.http.gracePeriod()
        let httpLogger = logger
        let descriptors = DescriptorLimit.raise()
        let serverConfiguration = try options.http.serverConfiguration(descriptors: descriptors) { message in
            httpLogger.notice("libmicrohttpd", metadata: ["message": "\(message)"])
        }
        let metricsListener = try options.http.metricsListener()
        let storage = try openStorage(options.storage)

        let store = SessionStore(configuration: storeConfiguration)
        if logger.logLevel <= .debug { logEvents(of: store, to: logger) }
        let backend = LocalSessionBackend(store: store, storage: storage)
        let metrics = SessionMetrics(events: backend.events, routes: SessionAPI.routes.catalogue)
        if let storage {
            metrics.addRefresh(StorageMetrics(storage: storage, registry: metrics.registry).refresh)
        }
        let endpoint = MetricsEndpoint(metrics: metrics, backend: backend)
        let routeIndices = SessionAPI.routes.routes.map { metrics.routeIndex(of: $0.template) }
        let api = SessionAPI(
            backend: backend,
            configuration: .init(apiToken: apiToken, maximumEventSubscribers: options.http.maxEventSubscribers),
            metrics: metricsListener == nil ? endpoint : nil,
            observer: { route, method, status, duration in
                let routeIndex = route.map { routeIndices[$0.index] } ?? metrics.routeIndex(of: nil)
                metrics.recordRequest(routeIndex: routeIndex, method: method, status: status, duration: duration)
            }
        )

        var apiConfiguration = serverConfiguration
        apiConfiguration.errorResponse = SessionAPI.errorResponse
        let server: HTTPServer
        do {
            server = try HTTPServer(configuration: apiConfiguration, handler: api)
        } catch let error as MicroHTTPError {
            storage?.close()
            throw StartupError(error.message)
        }
        let connections = ConnectionMetrics(registry: metrics.registry)
        metrics.addRefresh {
            let counts = server.connectionStatistics
            connections.update(
                open: counts.open,
                limit: counts.limit,
                refused: [
                    .perClientLimit: counts.refusedPerClientLimit, .connectionLimit: counts.refusedConnectionLimit,
                    .headerTimeout: counts.headerTimeouts, .bodyTimeout: counts.bodyTimeouts,
                ]
            )
        }
        var metricsServer: HTTPServer?
        if let metricsListener {
            do {
                metricsServer = try HTTPServer(
                    configuration: HTTPServerConfiguration(
                        host: metricsListener.host,
                        port: metricsListener.port,
                        threadCount: 1,
                        connectionLimit: 64,
                        perIPConnectionLimit: 8,
                        headerTimeout: apiConfiguration.headerTimeout,
                        bodyTimeout: apiConfiguration.bodyTimeout,
                        errorResponse: SessionAPI.errorResponse
                    ),
                    handler: endpoint.standaloneHandler
                )
            } catch let error as MicroHTTPError {
                server.shutdown(gracePeriod: .zero)
                storage?.close()
                throw StartupError("metrics listener: \(error.message)")
            }
        }

        let host = options.http.host
        let metricsLocation = metricsListener.map { listener in
            let shownHost = listener.host.contains(":") ? "[\(listener.host)]" : listener.host
            return "http://\(shownHost):\(metricsServer?.port ?? listener.port)/metrics"
        }
        return SessiondRuntime(
            logger: logger,
            store: store,
            storage: storage,
            api: api,
            server: server,
            metricsServer: metricsServer,
            grace: grace,
            startupMetadata: [
                "storage": storage == nil ? "memory (sessions are lost on restart)" : "sqlite",
                "threads": "\(options.http.threads)",
                "connection_limit": "\(apiConfiguration.connectionLimit)",
                "max_connections_per_client": "\(apiConfiguration.perIPConnectionLimit)",
                "descriptor_limit": "\(descriptors)",
                "idle_timeout_s": "\(options.sessions.idleTimeout)",
                "max_lifetime_s": "\(options.sessions.maxLifetime)",
                "max_sessions_per_user": "\(options.sessions.maxSessionsPerUser.map(String.init) ?? "unlimited")",
                "api_token": "\(apiToken == nil ? "none (loopback only)" : "required")",
                "metrics": "\(metricsLocation ?? "/metrics on the API port")",
            ],
            startupMessage: "sessiond listening on http://\(host.contains(":") ? "[\(host)]" : host):\(server.port)"
        )
    }

    /// Opens the SQLite storage, or `nil` for `--storage memory` (whose `--durability` is still checked).
    private static func openStorage(_ options: StorageOptions) throws -> SessionStorage? {
        let backend = try options.backend()
        let configuration = try options.storageConfiguration()
        guard backend == .sqlite else { return nil }
        do {
            return try SessionStorage(configuration: configuration, logger: Logger(label: "sessiond.storage"))
        } catch {
            throw StartupError("storage: \(error.code.rawValue): \(error.message)")
        }
    }

    /// Logs every session event at debug level: ids and usernames only (events never carry tokens).
    private static func logEvents(of store: SessionStore, to logger: Logger) {
        store.events.addObserver { event in
            switch event.kind {
            case .created:
                logger.debug("session created", metadata: ["session.id": "\(event.id)", "user": "\(event.username)"])
            case .ended(let reason):
                logger.debug(
                    "session ended",
                    metadata: [
                        "session.id": "\(event.id)", "user": "\(event.username)", "reason": "\(reason.rawValue)",
                    ]
                )
            }
        }
    }
}

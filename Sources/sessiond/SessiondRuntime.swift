import ArgumentParser
import Logging
import MicroHTTP
import ServiceLifecycle
import SessionCore
import SessionMetrics
import SessionRedis
import SessionServer
import SessionStorage

/// One run of sessiond, in four steps: ``build(_:logger:)`` checks the options, opens storage and
/// starts listening (`/healthz` answers, `/readyz` says 503); ``replay()`` restores the stored
/// sessions; ``run()`` serves until SIGTERM or SIGINT; ``close()`` commits what is left.
struct SessiondRuntime {
    /// Where the sessions live.
    enum Sessions {
        /// In this process: a store, with its SQLite journal unless `--storage memory`.
        case local(SessionStore, SessionStorage?)
        /// In Redis, shared with other instances.
        case redis(RedisSessionBackend)
    }

    let logger: Logger
    let sessions: Sessions
    let api: SessionAPI
    let server: HTTPServer
    let metricsServer: HTTPServer?
    let grace: Duration
    /// The certificate both listeners serve and the files it was read from; `nil` for plain HTTP.
    let tls: TLSConfiguration?
    /// The fields of the startup line known once listening.
    let startupMetadata: Logger.Metadata
    let startupMessage: Logger.Message

    /// Checks the options, opens storage, builds the store, metrics and API, and starts listening.
    /// - Throws: ``StartupError`` for a configuration sessiond cannot run with.
    static func build(_ options: Sessiond, logger: Logger) throws -> SessiondRuntime {
        let credentials = try options.security.credentials(logger: logger)
        let tls = try options.security.tlsFiles().map { files in
            TLSConfiguration(identity: try SecurityOptions.loadIdentity(files), files: files)
        }
        try options.security.checkExposure(host: options.http.host, credentials: credentials, tls: tls != nil)
        let storeConfiguration = try options.sessions.storeConfiguration()
        let grace = try options.http.gracePeriod()
        let httpLogger = logger
        let descriptors = DescriptorLimit.raise()
        var serverConfiguration = try options.http.serverConfiguration(descriptors: descriptors) { message in
            httpLogger.notice("libmicrohttpd", metadata: ["message": "\(message)"])
        }
        serverConfiguration.tls = tls?.identity
        let metricsListener = try options.http.metricsListener()
        let (sessions, backend, storageFields) = try openSessions(options, storeConfiguration)
        if logger.logLevel <= .debug { logEvents(of: backend.events, to: logger) }
        if let redis = backend as? RedisSessionBackend, redis.store.requiresFullCoverage {
            logger.warning(
                "Redis Cluster with cluster-require-full-coverage yes: while a primary fails over, every session fails; set it to no so that only that primary's sessions do",
                metadata: ["redis": "\(redis.client.endpointDescription)"]
            )
        }
        let storeID = (backend as? LocalSessionBackend)?.storeID ?? (backend as? RedisSessionBackend)?.store.id ?? ""
        let metrics = SessionMetrics(
            events: backend.events,
            storeID: storeID,
            routes: SessionAPI.routes.catalogue
        )
        switch sessions {
        case .local(_, let storage?):
            metrics.addRefresh(StorageMetrics(storage: storage, registry: metrics.registry).refresh)
        case .local:
            break
        case .redis(let redis):
            let redisMetrics = RedisMetrics(registry: metrics.registry)
            redis.observeCommands(redisMetrics.observe)
            metrics.addRefresh {
                let (runs, reaped) = redis.reaperStatistics
                redisMetrics.update(client: redis.client.statistics, reaperRuns: runs, reaped: reaped)
            }
        }
        let endpoint = MetricsEndpoint(metrics: metrics, backend: backend)
        let routeIndices = SessionAPI.routes.routes.map { metrics.routeIndex(of: $0.template) }
        let api = SessionAPI(
            backend: backend,
            configuration: .init(credentials: credentials, maximumEventSubscribers: options.http.maxEventSubscribers),
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
            sessions.close()
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
                var metricsConfiguration = HTTPServerConfiguration(
                    host: metricsListener.host,
                    port: metricsListener.port,
                    threadCount: 1,
                    connectionLimit: 64,
                    perIPConnectionLimit: 8,
                    headerTimeout: apiConfiguration.headerTimeout,
                    bodyTimeout: apiConfiguration.bodyTimeout,
                    errorResponse: SessionAPI.errorResponse
                )
                metricsConfiguration.tls = tls?.identity
                metricsServer = try HTTPServer(configuration: metricsConfiguration, handler: endpoint.standaloneHandler)
            } catch let error as MicroHTTPError {
                server.shutdown(gracePeriod: .zero)
                sessions.close()
                throw StartupError("metrics listener: \(error.message)")
            }
        }

        let host = options.http.host
        let scheme = tls == nil ? "http" : "https"
        let (applicationTokens, administrationTokens) = (
            credentials.applicationTokens.count, credentials.administrationTokens.count
        )
        let tlsField = tls.map { "TLS 1.2+, certificate expires \(TLSConfiguration.date($0.identity.notAfter))" }
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let metricsLocation = metricsListener.map { listener in
            let shownHost = listener.host.contains(":") ? "[\(listener.host)]" : listener.host
            return "\(scheme)://\(shownHost):\(metricsServer?.port ?? listener.port)/metrics"
        }
        return SessiondRuntime(
            logger: logger,
            sessions: sessions,
            api: api,
            server: server,
            metricsServer: metricsServer,
            grace: grace,
            tls: tls,
            startupMetadata: storageFields.merging([
                "threads": "\(options.http.threads)",
                "connection_limit": "\(apiConfiguration.connectionLimit)",
                "max_connections_per_client": "\(apiConfiguration.perIPConnectionLimit)",
                "descriptor_limit": "\(descriptors)",
                "idle_timeout_s": "\(options.sessions.idleTimeout)",
                "max_lifetime_s": "\(options.sessions.maxLifetime)",
                "max_sessions_per_user": "\(options.sessions.maxSessionsPerUser.map(String.init) ?? "unlimited")",
                "api_tokens": "\(applicationTokens == 0 ? "none (loopback only)" : "\(applicationTokens)")",
                "admin_tokens":
                    "\(administrationTokens == 0 ? "none (API tokens grant every route)" : "\(administrationTokens)")",
                "tls": "\(tlsField ?? "off")",
                "metrics": "\(metricsLocation ?? "/metrics on the API port")",
            ]) { _, new in new },
            startupMessage: "sessiond listening on \(scheme)://\(shownHost):\(server.port)"
        )
    }

    /// Opens where the sessions live: the SQLite storage (or none for `--storage memory`, whose
    /// `--durability` is still checked) with an in-process store, or the Redis store; returns the
    /// storage's fields for the startup line.
    private static func openSessions(
        _ options: Sessiond,
        _ storeConfiguration: SessionStore.Configuration
    ) throws -> (Sessions, any SessionBackend, Logger.Metadata) {
        let kind = try options.storage.backend()
        let storageConfiguration = try options.storage.storageConfiguration()
        switch kind {
        case .redis:
            let configuration = try options.redis.storeConfiguration(sessions: storeConfiguration)
            let backend: RedisSessionBackend
            do {
                backend = try RedisSessionBackend.open(configuration: configuration)
            } catch {
                throw StartupError("redis: \(error.message)")
            }
            backend.startBackgroundWork()
            let store = backend.store
            var fields: Logger.Metadata = [
                "storage": "redis", "redis": "\(backend.client.endpointDescription)", "store": "\(store.id)",
                "redis_primaries": "\(store.primaries)", "redis_wait_replicas": "\(configuration.waitReplicas)",
                "store_created": "\(store.isNew)", "partitions": "\(store.partitions)",
                "redis_version": "\(store.redisVersion)", "redis_persistence": "\(store.persistence)",
            ]
            if store.isCluster { fields["redis_full_coverage"] = "\(store.requiresFullCoverage ? "yes" : "no")" }
            if configuration.waitReplicas > 0 {
                fields["redis_wait_timeout_ms"] = "\(configuration.client.confirmationWait.milliseconds)"
            }
            return (.redis(backend), backend, fields)
        case .sqlite:
            let storage: SessionStorage
            do {
                storage = try SessionStorage(
                    configuration: storageConfiguration,
                    logger: Logger(label: "sessiond.storage")
                )
            } catch {
                throw StartupError("storage: \(error.code.rawValue): \(error.message)")
            }
            let store = SessionStore(configuration: storeConfiguration)
            return (.local(store, storage), LocalSessionBackend(store: store, storage: storage), ["storage": "sqlite"])
        case .memory:
            let store = SessionStore(configuration: storeConfiguration)
            return (
                .local(store, nil), LocalSessionBackend(store: store),
                ["storage": "memory (sessions are lost on restart)"]
            )
        }
    }

    /// Logs every session event at debug level: ids and usernames only (events never carry tokens).
    private static func logEvents(of events: SessionEventHub, to logger: Logger) {
        events.addObserver { event in
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

extension SessiondRuntime.Sessions {
    /// Closes the storage or the Redis connections (on a failed start).
    func close() {
        switch self {
        case .local(_, let storage): storage?.close()
        case .redis(let backend): backend.close()
        }
    }
}

import ArgumentParser
import Logging
import MicroHTTP
import ServiceLifecycle
import SessionCore
import SessionRedis
import SessionServer
import SessionStorage
import UnixSignals

extension SessiondRuntime {
    /// Restores the stored sessions while the server already answers `/healthz` (and `/readyz` with
    /// 503), logging progress on large tables, then attaches the storage as the store's journal.
    /// - Returns: the replay's fields for the startup line.
    func replay() throws -> Logger.Metadata {
        guard case .local(let store, let storage?) = sessions else { return [:] }
        logger.info("replaying storage", metadata: ["file": "\(storage.path)", "port": "\(server.port)"])
        var nextReport = 250_000
        let report: ReplayReport
        do {
            report = try storage.replay(into: store) { read in
                if read >= nextReport {
                    logger.info("replaying storage", metadata: ["rows_read": "\(read)"])
                    nextReport += 250_000
                }
            }
        } catch {
            server.shutdown(gracePeriod: .zero)
            metricsServer?.shutdown(gracePeriod: .zero)
            storage.close()
            throw StartupError("storage: \(error.code.rawValue): \(error.message)")
        }
        store.attachJournal(storage)
        storage.start()
        return [
            "data_dir": "\(storage.configuration.dataDirectory)",
            "durability": "\(storage.configuration.durability.rawValue)",
            "restored": "\(report.restored)",
            "expired_while_down": "\(report.expiredCount)",
            "replay_ms": "\(report.duration.milliseconds)",
            "previous_shutdown": "\(report.previousShutdownWasClean ? "clean" : "unclean (crash or kill -9)")",
        ]
    }

    /// Serves until SIGTERM or SIGINT: marks the API ready and logs the startup line once the signals
    /// are trapped, runs expiry and keep-alives, and stops the HTTP server gracefully.
    func run(replayed: Logger.Metadata) async throws {
        let metadata = startupMetadata.merging(replayed) { _, new in new }
        let (api, logger, message) = (api, logger, startupMessage)
        let expiry: ExpiryService
        switch sessions {
        case .local(let store, _): expiry = ExpiryService { await store.runExpiryLoop(interval: .milliseconds(250)) }
        case .redis(let backend): expiry = ExpiryService { await backend.runReaper(interval: .milliseconds(250)) }
        }
        var reloads: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let tls {
            // Trapped before the startup line: a SIGHUP must never take its default action (exit).
            let signals = await UnixSignalsSequence(trapping: .sighup)
            reloads.append(.init(service: TLSReloadService(signals: signals, tls: tls, logger: logger)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: reloads + [
                    .init(
                        service: ReadinessService {
                            api.markReady()
                            api.backend.statistics().whenComplete { result in
                                let counts: Logger.Metadata =
                                    switch result {
                                    case .success(let stats):
                                        ["sessions": "\(stats.activeSessions)", "users": "\(stats.realtimeUsers)"]
                                    case .failure(let error): ["sessions": "unknown (\(error.code))"]
                                    }
                                logger.info(message, metadata: metadata.merging(counts) { _, new in new })
                            }
                        }
                    ),
                    .init(service: expiry),
                    .init(service: KeepAliveService(events: api.events)),
                    .init(
                        service: HTTPService(
                            server: server,
                            metricsServer: metricsServer,
                            events: api.events,
                            grace: grace,
                            logger: logger
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
            sessions.close()
            throw error
        }
    }

    /// Commits what is left and closes storage (or the Redis connections), once the HTTP server and
    /// expiry have stopped.
    /// - Throws: `ExitCode(3)` when changes could not be committed (a supervisor must be able to tell
    ///   this stop from a clean one).
    func close() throws {
        switch sessions {
        case .redis(let backend):
            backend.close()
            logger.info("sessiond stopped", metadata: ["store": "\(backend.store.id)"])
        case .local(let store, let storage):
            let lost = storage?.close() ?? 0
            let final = store.statistics()
            guard lost == 0 else {
                logger.critical(
                    "sessiond stopped with uncommitted changes lost",
                    metadata: ["sessions": "\(final.activeSessions)", "lost_changes": "\(lost)"]
                )
                throw ExitCode(3)
            }
            logger.info("sessiond stopped", metadata: ["sessions": "\(final.activeSessions)"])
        }
    }
}

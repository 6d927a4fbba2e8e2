import Logging
import MicroHTTP
import ServiceLifecycle
import SessionServer

/// Keeps the HTTP server running; at graceful shutdown (SIGTERM/SIGINT) stops accepting, lets
/// in-flight requests finish within the grace period, closes event streams, and stops.
struct HTTPService: Service {
    let server: HTTPServer
    let metricsServer: HTTPServer?
    let events: EventBroadcaster
    let grace: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("sessiond stopping", metadata: ["grace_s": "\(grace / .seconds(1))"])
        events.finishAll()
        server.shutdown(gracePeriod: grace)
        metricsServer?.shutdown(gracePeriod: .seconds(1))
    }
}

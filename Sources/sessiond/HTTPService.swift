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
    let grace: Double
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("sessiond stopping", metadata: ["grace_s": "\(grace)"])
        events.finishAll()
        server.shutdown(gracePeriod: .milliseconds(Int64(grace * 1000)))
        metricsServer?.shutdown(gracePeriod: .seconds(1))
    }
}

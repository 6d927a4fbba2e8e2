import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the TLS certificate and key from their files at every SIGHUP (`kill -HUP`, `systemctl
/// reload`), without dropping a connection.
///
/// The signal sequence is created before the service group starts (``SessiondRuntime/run(replayed:)``),
/// so that a SIGHUP right after the startup line reloads instead of taking the default action
/// (terminating the process).
struct TLSReloadService: Service {
    let signals: UnixSignalsSequence
    let tls: TLSConfiguration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                tls.reload(logger: logger)
            }
        }
    }
}

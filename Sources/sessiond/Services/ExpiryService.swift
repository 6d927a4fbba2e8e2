import ServiceLifecycle
import SessionCore

/// Ends expired sessions every 250 ms until graceful shutdown.
struct ExpiryService: Service {
    let store: SessionStore

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await store.runExpiryLoop(interval: .milliseconds(250))
        }
    }
}

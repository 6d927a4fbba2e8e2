import ServiceLifecycle
import SessionServer

/// Sends a keep-alive comment to every event-stream subscriber every 15 seconds.
struct KeepAliveService: Service {
    let events: EventBroadcaster

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(15))
                events.sendKeepAlive()
            }
        }
    }
}

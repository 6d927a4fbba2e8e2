import ServiceLifecycle

/// Ends expired sessions until graceful shutdown: the store's expiry loop, or the Redis reaper.
struct ExpiryService: Service {
    /// The loop; it ends when its task is cancelled.
    let loop: @Sendable () async -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await loop()
        }
    }
}

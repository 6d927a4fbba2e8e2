import ServiceLifecycle

/// Makes the API ready, and says so, once the service group runs.
///
/// The group traps SIGTERM and SIGINT before it starts its services; until then a SIGTERM takes the
/// default action and kills the process, without a graceful stop or closing storage. Marking the API
/// ready from inside the group means that a write can be acknowledged only once a SIGTERM stops
/// sessiond cleanly (a SIGTERM that took the default action would leave the storage file marked
/// unclean, and in `interval` durability lose the last acknowledged writes).
struct ReadinessService: Service {
    /// Called once, when the service starts: marks the API ready and logs the startup line.
    let becomeReady: @Sendable () -> Void

    func run() async throws {
        becomeReady()
        try? await gracefulShutdown()
    }
}

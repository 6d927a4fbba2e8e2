import Dispatch
import SessionCore
import Synchronization

/// The backend for several sessiond instances sharing one Redis (`--storage redis`): every session
/// lives in Redis, every operation is one atomic function call there (``RedisFunctionLibrary``), and
/// the instances keep no copy of any session, so a logout or an expiry seen by one is seen by all at
/// the next request.
///
/// - Every reply comes later (``SessionReply/pending(_:)``): no HTTP thread waits on Redis.
/// - Redis's clock (`TIME` in the functions) is the clock: instances with skewed clocks agree.
/// - Each session ends exactly once, by the call that ends it (a validation past a deadline, a
///   logout, the reaper of any instance); that call's instance publishes the `ended` event on its
///   ``events`` hub (its metrics count it), and the function appends it to the partition's stream,
///   from which every instance feeds its event-stream subscribers (``eventFeed``).
/// - Fails closed: Redis unreachable or slower than the timeout answers `storage_unavailable`.
///
/// ```swift
/// let backend = try RedisSessionBackend.open(
///     configuration: .init(client: .init(endpoint: try RedisEndpoint(url: "redis://127.0.0.1:6379")))
/// )
/// backend.startBackgroundWork()   // the event tail; run runReaper(interval:) in a task
/// ```
public final class RedisSessionBackend: SessionBackend {
    public let events = SessionEventHub()
    /// The connections every operation goes through: one server's, or a Redis Cluster's.
    public let client: any RedisCommandSender
    /// What was found when the store was opened.
    public let store: RedisStoreDescription
    /// The settings this instance was started with.
    public let settings: RedisStoreConfiguration
    /// The merged event streams of every partition, for `/v1/events`.
    public let tail: RedisEventTail
    public var eventFeed: any SessionEventFeed { tail }
    let credentials: PartitionedCredentials
    let counters = RedisOperationCounters()
    /// Redis's clock between function calls, for validations that change nothing.
    let redisClock = RedisClockOffset()
    /// Users whose sighting this instance recorded within the last second.
    let sightings = RecentSightings()
    /// The latest configuration read from or written to the store: for the order of the checks of a
    /// request (the functions apply the store's current values).
    let knownConfiguration: Mutex<SessionStore.Configuration>
    /// Called with each operation's name and how long Redis took to answer it (queueing included). In
    /// a struct: a bare optional closure in a `Mutex` is re-wrapped in a reabstraction thunk at every
    /// `withLock { $0 }`, a chain that grows with each read until the stack overflows.
    private struct CommandObserver {
        let call: @Sendable (String, Duration) -> Void
    }
    private let commandObserver = Mutex<CommandObserver?>(nil)
    /// With `--redis-wait-replicas`: the servers whose replicas did not confirm a write, until when
    /// (uptime nanoseconds) writes to them fail at once.
    private let unconfirmedServers = Mutex<[RedisEndpoint: UInt64]>([:])
    private let contextArguments: [[UInt8]]
    private let reaperState = Mutex(ReaperState())
    private let isRestoring = Atomic<Bool>(false)

    struct ReaperState {
        var runs = 0
        var reaped = 0
        var isStopped = false
    }

    /// Connects, checks and opens the store (see ``RedisStoreSetup``); blocking, for startup. The
    /// first seed that answers tells whether Redis is a cluster (`cluster_enabled:1`).
    /// - Throws: ``RedisStoreError`` naming what is wrong (unreachable, too old, evicting, …).
    public static func open(configuration: RedisStoreConfiguration) throws(RedisStoreError) -> RedisSessionBackend {
        let client: any RedisCommandSender
        // Writes go on a connection of their own when replicas must confirm them (`WAIT`).
        var clientConfiguration = configuration.client
        clientConfiguration.confirmingReplicas = configuration.waitReplicas
        if RedisClusterClient.isCluster(seeds: configuration.seeds, timeout: configuration.client.timeout) == true {
            guard configuration.client.endpoint.database == 0 else {
                throw RedisStoreError(
                    "a Redis Cluster has only database 0: remove /\(configuration.client.endpoint.database) from --redis-url"
                )
            }
            do {
                client = try RedisClusterClient(seeds: configuration.seeds, configuration: clientConfiguration)
            } catch {
                throw RedisStoreError("Redis Cluster: \(error.message)")
            }
        } else {
            client = RedisClient(configuration: clientConfiguration)
        }
        do {
            var store = try RedisStoreSetup.open(client: client, configuration: configuration)
            if let cluster = client as? RedisClusterClient {
                store.isCluster = true
                store.primaries = cluster.map.primaries.count
            }
            let backend = RedisSessionBackend(client: client, store: store, settings: configuration)
            if let cluster = client as? RedisClusterClient {
                cluster.prepareNewPrimaries { [weak backend] node in
                    backend?.holdWritesUntilReplicated(node)
                    try? RedisStoreSetup.loadLibrary(node)
                }
            }
            return backend
        } catch {
            client.close()
            throw error
        }
    }

    private init(client: any RedisCommandSender, store: RedisStoreDescription, settings: RedisStoreConfiguration) {
        self.client = client
        self.store = store
        self.settings = settings
        credentials = PartitionedCredentials(partitionCount: store.partitions)
        var known = settings.sessionDefaults
        known.maxUsernameBytes = settings.maxUsernameBytes
        knownConfiguration = Mutex(known)
        contextArguments = [
            Array("\(max(1, settings.eventsKeptPerPartition))".utf8),
            Array("\(settings.expiredTokenRetention.milliseconds)".utf8),
        ]
        if let cluster = client as? RedisClusterClient {
            tail = RedisEventTail(source: .cluster(cluster), store: store)
        } else {
            tail = RedisEventTail(source: .server(settings.client.endpoint), store: store)
        }
    }

    /// Whether Redis can be reached (on a cluster, some primary: the others' partitions are served
    /// while one fails over).
    public var isAvailable: Bool { client.isReachable }

    /// Calls `observer` with each operation's name (``operations``) and how long Redis took to
    /// answer it, queueing included (for the latency metric).
    public func observeCommands(_ observer: @escaping @Sendable (String, Duration) -> Void) {
        commandObserver.withLock { $0 = CommandObserver(call: observer) }
    }

    /// Reports an operation's duration to the observer.
    func recordDuration(_ operation: String, since started: UInt64) {
        guard let observer = commandObserver.withLock({ $0 }) else { return }
        let label = operation.hasPrefix("sd1_") ? String(operation.dropFirst(4)) : operation
        observer.call(label, .nanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started)))
    }

    /// Starts the event tail. The reaper runs in ``runReaper(interval:)``.
    public func startBackgroundWork() {
        tail.start()
    }

    /// Stops the event tail and closes the connections.
    public func close() {
        reaperState.withLock { $0.isStopped = true }
        tail.stop()
        client.close()
    }

    /// Reaper runs and sessions reaped by this instance, for the metrics.
    public var reaperStatistics: (runs: Int, reaped: Int) {
        reaperState.withLock { ($0.runs, $0.reaped) }
    }

    func recordReaperRun(reaped: Int) {
        reaperState.withLock { state in
            state.runs += 1
            state.reaped += reaped
        }
    }

    var isStopped: Bool { reaperState.withLock { $0.isStopped } }

    // MARK: Calling the functions

    /// The partition of a user.
    func partition(of username: String) -> Int {
        RedisKeys.partition(of: username, count: store.partitions)
    }

    /// Calls function `name` on `partition` with `arguments` (after the two context arguments when
    /// `withContext`), and gives `completion` the reply, or `storage_unavailable`.
    func call(
        _ name: String,
        partition: Int,
        withContext: Bool = true,
        _ arguments: [[UInt8]],
        completion: @escaping @Sendable (Result<RedisValue, SessionError>) -> Void
    ) {
        send(
            command(name, partition: partition, withContext: withContext, arguments),
            operation: name,
            completion: completion
        )
    }

    /// The `FCALL` of function `name` on `partition`.
    func command(_ name: String, partition: Int, withContext: Bool = true, _ arguments: [[UInt8]]) -> [[UInt8]] {
        var command: [[UInt8]] = [
            Array("FCALL".utf8), Array(name.utf8), [UInt8(ascii: "1")],
            Array(RedisKeys.partitionConfiguration(partition).utf8),
        ]
        if withContext { command += contextArguments }
        return command + arguments
    }

    /// A client result as the backend's: an error reply or no answer is `storage_unavailable`. A
    /// missing function (a Redis that lost its data) has the library and the configuration loaded
    /// again in the background.
    func interpret(
        _ result: Result<RedisValue, RedisClientError>,
        operation: String
    ) -> Result<RedisValue, SessionError> {
        switch result {
        case .success(.error(let message)):
            client.recordErrorReply()
            if message.contains("Function not found") || message.contains("not_initialized") { restoreStore() }
            return .failure(Self.unavailable("Redis refused \(operation): \(message)"))
        case .success(let value):
            return .success(value)
        case .failure(let error):
            return .failure(Self.unavailable("Redis: \(error.code.rawValue)"))
        }
    }

    /// `storage_unavailable` with `detail`.
    static func unavailable(_ detail: String) -> SessionError {
        SessionError(code: .storageUnavailable, message: "the session store cannot be reached (\(detail)); retry later")
    }

    /// A reply that does not have the expected shape (a bug or a foreign library version).
    static func malformedReply(_ operation: String) -> SessionError {
        SessionError(code: .storageUnavailable, message: "unexpected answer of Redis to \(operation); retry later")
    }

    /// The `operation` label values of the command-latency metric.
    public static let operations = [
        "create", "validate", "data", "set_data", "rotate", "logout", "session", "revoke", "revoke_user",
        "delete_some", "reap", "list", "user_sessions", "users", "stats", "configure", "configuration",
        "update_configuration", "forget_seen", "statistics", "validate_read", "see",
    ]

    /// Sends `command`, reporting the time it took to ``commandObserver``.
    func send(
        _ command: [[UInt8]],
        operation: String,
        completion: @escaping @Sendable (Result<RedisValue, SessionError>) -> Void
    ) {
        let started = DispatchTime.now().uptimeNanoseconds
        guard settings.waitReplicas > 0, !Self.readOnlyOperations.contains(operation) else {
            return client.send(command) { [self] result in
                recordDuration(operation, since: started)
                completion(interpret(result, operation: operation))
            }
        }
        // A primary whose replicas did not confirm a write within the last second gets no write
        // (each group of writes there would wait out a whole `WAIT`, and the writes queued behind
        // it too): the call fails at once, and the first one after that second tries again.
        let server = client.server(of: command)
        if let server, let until = unconfirmedServers.withLock({ $0[server] }), started < until {
            client.recordError(.unconfirmed)
            return completion(.failure(Self.unavailable("fewer than \(settings.waitReplicas) replicas confirm writes")))
        }
        // On the server's connection for confirmed writes, answered once a `WAIT` after it (shared
        // with the writes queued meanwhile) says that many replicas have it.
        client.sendConfirmed(command) { [self] result in
            recordDuration(operation, since: started)
            completion(confirmed(result, operation: operation, server: server))
        }
    }

    /// Operations that never write, so that `--redis-wait-replicas` need not wait for them.
    static let readOnlyOperations: Set<String> = [
        RedisFunctionLibrary.data, RedisFunctionLibrary.session, RedisFunctionLibrary.list,
        RedisFunctionLibrary.userSessions, RedisFunctionLibrary.users, RedisFunctionLibrary.statistics,
        "configuration", "statistics",
    ]

    /// A confirmed write's result as the backend's (``interpret(_:operation:)``). Too few replicas in
    /// time (the write may or may not survive a failover, so it is not acknowledged) is
    /// `storage_unavailable`; then, and when no answer came in time (the server is busy with earlier
    /// waits), writes to `server` fail at once for a second.
    func confirmed(
        _ result: Result<RedisValue, RedisClientError>,
        operation: String,
        server: RedisEndpoint?
    ) -> Result<RedisValue, SessionError> {
        var outcome = interpret(result, operation: operation)
        var isUnconfirmed = false
        if case .failure(let error) = result {
            switch error.code {
            case .unconfirmed:
                isUnconfirmed = true
                client.recordError(.unconfirmed)
                outcome = .failure(Self.unavailable(error.message))
            case .timeout:
                isUnconfirmed = true
            default:
                break
            }
        }
        if let server {
            if isUnconfirmed {
                holdWrites(to: server)
            } else if case .success = outcome {
                unconfirmedServers.withLock { $0[server] = nil }
            }
        }
        return outcome
    }

    /// With `--redis-wait-replicas N`, writes to a primary met after the start (a replica just
    /// promoted) that has fewer than N replicas fail at once for a second, as after an unconfirmed
    /// write, rather than each `WAIT` there holding the reads queued behind it.
    func holdWritesUntilReplicated(_ node: RedisClient) {
        guard settings.waitReplicas > 0, let replicas = RedisStoreSetup.connectedReplicas(node),
            replicas < settings.waitReplicas
        else { return }
        holdWrites(to: node.configuration.endpoint)
    }

    /// Makes writes to `server` fail at once for the next second.
    private func holdWrites(to server: RedisEndpoint) {
        let until = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
        unconfirmedServers.withLock { $0[server] = until }
    }

    /// Loads the library, the store's description and the configuration again, one restore at a time
    /// (after Redis lost its data: a restart without persistence, a `FLUSHALL`).
    func restoreStore() {
        guard !isRestoring.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let configuration = knownConfiguration.withLock { $0 }
        DispatchQueue.global().async { [self] in
            defer { isRestoring.store(false, ordering: .releasing) }
            try? RedisStoreSetup.restore(client: client, store: store, sessionDefaults: configuration)
        }
    }

    /// Publishes what a call ended on this instance's hub and counts it.
    func report(ended: [SessionEvent]) {
        guard !ended.isEmpty else { return }
        counters.recordEnded(ended)
        events.publish(ended)
    }
}

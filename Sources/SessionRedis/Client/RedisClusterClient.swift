import Dispatch
import Logging
import Synchronization

/// A Redis Cluster as one ``RedisCommandSender``: one pipelined ``RedisClient`` per primary, and the
/// slot map (`CLUSTER SLOTS`) that says which primary serves a command's key.
///
/// - A command goes to the primary of its key's slot (``RedisHashSlot/of(command:)``); a command
///   without keys to any primary.
/// - `MOVED` (the slot has moved for good) updates the map, asks for a full read of it, and sends the
///   command to the named node; `ASK` (the slot is being moved) sends `ASKING` and the command to
///   the named node, once. At most five redirections per command.
/// - `TRYAGAIN` and `CLUSTERDOWN` (the command was not carried out) and an unreachable primary (the
///   command was never written) are tried again every 20 ms until the client's timeout, the map being
///   read again meanwhile: a failover or the end of a slot's move is waited out rather than answered
///   503, within the timeout. A command that was written and got no answer is never sent again.
/// - The map is read again every second, and at once (at most every 100 ms) after a redirection or an
///   unreachable primary. Clients of nodes that are no longer primaries are closed.
///
/// ```swift
/// let cluster = try RedisClusterClient(
///     seeds: [try RedisEndpoint(url: "redis://127.0.0.1:7000"), try RedisEndpoint(url: "redis://127.0.0.1:7001")],
///     configuration: .init(endpoint: try RedisEndpoint(url: "redis://127.0.0.1:7000"))
/// )
/// cluster.send(["GET", "sd:{3}:cfg"]) { print($0) }
/// ```
public final class RedisClusterClient: RedisCommandSender {
    /// The settings of each primary's client (its endpoint is the first seed's).
    public let configuration: RedisClientConfiguration
    let seeds: [RedisEndpoint]
    struct State {
        var map: RedisClusterMap
        var nodes: [RedisEndpoint: RedisClient] = [:]
        /// Counts of the clients closed so far and of the failures found by callers, kept in the totals.
        var retired = RedisClientStatistics()
        var lastRefresh: UInt64 = 0
        var refreshRequested = false
        var mapReads = 0

        /// The primary of `slot`; for a command without keys, the first primary connected (or the
        /// first, when none is).
        func target(ofSlot slot: Int?) -> RedisEndpoint? {
            if let slot { return map.primary(ofSlot: slot) }
            return map.primaries.first { nodes[$0]?.isUp == true } ?? map.primaries.first
        }
    }
    let state: Mutex<State>
    let isClosed = Atomic<Bool>(false)
    let refreshQueue = DispatchQueue(label: "sessiond.redis.cluster-map")
    /// Dispatch sources are thread-safe (created here, cancelled once by ``close()``), but not `Sendable`.
    private nonisolated(unsafe) let refreshTimer: any DispatchSourceTimer
    /// Called with the client of each primary met after the start (a node added, a replica
    /// promoted): the store loads its functions there.
    private let preparesNode: Mutex<(@Sendable (RedisClient) -> Void)?> = Mutex(nil)
    /// For changes of the map (a failover, a slot moved).
    let logger: Logger
    static let maximumRedirections = 5
    static let retryPause = Duration.milliseconds(20)

    /// Whether the first seed that answers is a cluster node (`cluster_enabled:1`); `nil` when no
    /// seed answers.
    public static func isCluster(seeds: [RedisEndpoint], timeout: Duration) -> Bool? {
        for seed in seeds {
            guard let connection = try? RedisConnection(endpoint: seed, timeout: timeout),
                let reply = try? connection.command(["INFO", "cluster"]), let text = reply.string
            else { continue }
            return text.contains("cluster_enabled:1")
        }
        return nil
    }

    /// Reads the slot map from the first seed that answers and connects to every primary.
    /// - Throws: ``RedisClientError`` `connect` when no seed answers or the cluster serves no slots.
    public init(
        seeds: [RedisEndpoint],
        configuration: RedisClientConfiguration,
        logger: Logger = Logger(label: "sessiond.redis")
    ) throws(RedisClientError) {
        self.seeds = seeds.isEmpty ? [configuration.endpoint] : seeds
        self.configuration = configuration
        self.logger = logger
        guard let map = Self.readMap(from: self.seeds, template: configuration.endpoint, timeout: configuration.timeout)
        else {
            throw RedisClientError(
                code: .connect,
                message:
                    "no Redis Cluster node answered CLUSTER SLOTS (\(self.seeds.map(\.description).joined(separator: ", ")))"
            )
        }
        var nodes: [RedisEndpoint: RedisClient] = [:]
        for primary in map.primaries {
            var node = configuration
            node.endpoint = primary
            nodes[primary] = RedisClient(configuration: node)
        }
        state = Mutex(State(map: map, nodes: nodes, lastRefresh: RedisClient.now(), mapReads: 1))
        refreshTimer = DispatchSource.makeTimerSource(queue: refreshQueue)
        refreshTimer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1))
        refreshTimer.setEventHandler { [weak self] in self?.refreshMap() }
        refreshTimer.resume()
    }

    /// Has `prepare` called with the client of every primary met from now on.
    public func prepareNewPrimaries(_ prepare: @escaping @Sendable (RedisClient) -> Void) {
        preparesNode.withLock { $0 = prepare }
    }

    /// The slot map as last read.
    var map: RedisClusterMap { state.withLock { $0.map } }

    /// How many times the map was read so far.
    var mapReads: Int { state.withLock { $0.mapReads } }

    // MARK: RedisCommandSender

    public func send(_ arguments: [[UInt8]], completion: @escaping RedisClient.Completion) {
        sendPipelined([arguments]) { results in completion(results[0]) }
    }

    public func sendPipelined(
        _ commands: [[[UInt8]]],
        completion: @escaping @Sendable ([Result<RedisValue, RedisClientError>]) -> Void
    ) {
        guard !commands.isEmpty else { return completion([]) }
        let slot = commands.lazy.compactMap { RedisHashSlot.of(command: $0) }.first
        let routing = Routing(
            commands: commands,
            slot: slot,
            started: RedisClient.now(),
            confirmed: false,
            completion: completion
        )
        route(routing, asking: nil, attempt: 0)
    }

    /// The write goes to its slot's primary, on that primary's confirming connection; `ASK` is
    /// waited out (``Next/retry``), since `ASKING` would have to go on that connection too.
    public func sendConfirmed(_ arguments: [[UInt8]], completion: @escaping RedisClient.Completion) {
        let routing = Routing(
            commands: [arguments],
            slot: RedisHashSlot.of(command: arguments),
            started: RedisClient.now(),
            confirmed: true
        ) { results in completion(results[0]) }
        route(routing, asking: nil, attempt: 0)
    }

    public func server(of command: [[UInt8]]) -> RedisEndpoint? {
        let slot = RedisHashSlot.of(command: command)
        return state.withLock { state in state.target(ofSlot: slot) }
    }

    public func sendToEveryPrimaryAndWait(_ arguments: [[UInt8]]) -> [Result<RedisValue, RedisClientError>] {
        let primaries = state.withLock { $0.map.primaries }
        return primaries.map { client(for: $0).sendAndWait(arguments) }
    }

    /// Every primary's client is connected and every slot has a primary.
    public var isUp: Bool {
        let (map, nodes) = state.withLock { ($0.map, $0.nodes) }
        return map.coversEverySlot && map.primaries.allSatisfy { nodes[$0]?.isUp == true }
    }

    /// Some primary's client is connected: the partitions it serves can be used (with
    /// `cluster-require-full-coverage no`, while another primary fails over).
    public var isReachable: Bool {
        let (map, nodes) = state.withLock { ($0.map, $0.nodes) }
        return map.primaries.contains { nodes[$0]?.isUp == true }
    }

    public var statistics: RedisClientStatistics {
        let (nodes, retired) = state.withLock { (Array($0.nodes.values), $0.retired) }
        var total = retired
        for node in nodes { total.add(node.statistics) }
        total.isUp = isUp
        return total
    }

    public func recordErrorReply() { recordError(.reply) }

    public func recordError(_ code: RedisClientError.Code) {
        state.withLock { $0.retired.errors[code, default: 0] += 1 }
    }

    public var endpointDescription: String {
        "cluster " + state.withLock { $0.map.primaries.map(\.description).joined(separator: ",") }
    }

    public func close() {
        guard !isClosed.exchange(true, ordering: .relaxed) else { return }
        refreshTimer.cancel()
        refreshQueue.sync {}
        let nodes = state.withLock { state in
            defer { state.nodes.removeAll() }
            return Array(state.nodes.values)
        }
        for node in nodes { node.close() }
    }

    // MARK: Routing

    /// Commands on their way to the primary of their slot: what ``route(_:asking:attempt:)`` and
    /// ``retryOrFail(_:attempt:failure:)`` pass on from one attempt to the next.
    private struct Routing: Sendable {
        let commands: [[[UInt8]]]
        let slot: Int?
        /// When the first attempt began (the timeout counts from there).
        let started: UInt64
        /// One write sent with ``RedisClient/sendConfirmed(_:completion:)``.
        let confirmed: Bool
        let completion: @Sendable ([Result<RedisValue, RedisClientError>]) -> Void
    }

    /// Sends the commands to the primary of their slot (or to `asking`), following redirections.
    private func route(_ routing: Routing, asking: RedisEndpoint?, attempt: Int) {
        let (commands, slot, completion) = (routing.commands, routing.slot, routing.completion)
        guard !isClosed.load(ordering: .relaxed) else {
            let closed = RedisClientError(code: .closed, message: "the Redis client is closed")
            return completion(commands.map { _ in .failure(closed) })
        }
        let target = asking ?? state.withLock { state in state.target(ofSlot: slot) }
        guard let target else {
            requestRefresh()
            return retryOrFail(routing, attempt: attempt) {
                RedisClientError(code: .connect, message: "no Redis Cluster node serves slot \(slot ?? -1)")
            }
        }
        let node = client(for: target)
        let handle: @Sendable ([Result<RedisValue, RedisClientError>]) -> Void = { [self] results in
            switch decide(routing, results, attempt: attempt) {
            case .done:
                completion(results)
            case .moved:
                route(routing, asking: nil, attempt: attempt + 1)
            case .ask(let endpoint):
                route(routing, asking: endpoint, attempt: attempt + 1)
            case .retry:
                retryOrFail(routing, attempt: attempt) { nil }
            }
        }
        if routing.confirmed {
            node.sendConfirmed(commands[0]) { handle([$0]) }
        } else if asking != nil {
            // ASKING applies to the next command only: one before each.
            let asked = commands.flatMap { [[Array("ASKING".utf8)], $0] }
            node.sendPipelined(asked) { results in
                handle(stride(from: 1, to: results.count, by: 2).map { results[$0] })
            }
        } else {
            node.sendPipelined(commands, completion: handle)
        }
    }

    private enum Next {
        case done
        /// The map now names the slot's new primary.
        case moved
        case ask(RedisEndpoint)
        case retry

        var isDone: Bool {
            if case .done = self { return true }
            return false
        }
    }

    /// What to do with the answers of commands that share a slot. The first redirection or failure
    /// among them applies to all (a command without keys, such as `TIME`, may come first), with three
    /// exceptions that wait for the slot's move to end instead (``Next/retry``): `ASK` for some of the
    /// keyed commands only (the others' keys are still here), `ASK` for a function call (a function
    /// reads keys it does not name, and the importing node may not have them yet; see
    /// ``RedisFunctionLibrary``), and `ASK` for a confirmed write (`ASKING` would have to share its
    /// connection).
    private func decide(
        _ routing: Routing,
        _ results: [Result<RedisValue, RedisClientError>],
        attempt: Int
    ) -> Next {
        var decision = Next.done
        var asked = 0
        var keyed = 0
        var callsFunction = false
        for (command, result) in zip(routing.commands, results) {
            let next = next(after: result, attempt: attempt)
            if RedisHashSlot.of(command: command) != nil {
                keyed += 1
                if case .ask = next { asked += 1 }
                if let name = command.first, RedisHashSlot.isName(name, "FCALL") { callsFunction = true }
            }
            if decision.isDone { decision = next }
        }
        if asked > 0 && (asked < keyed || callsFunction || routing.confirmed) { return .retry }
        return decision
    }

    /// What one answer asks for.
    private func next(after result: Result<RedisValue, RedisClientError>, attempt: Int) -> Next {
        switch result {
        case .success(.error(let message)):
            if message.hasPrefix("MOVED "),
                let moved = RedisClusterMap.redirection(message, template: configuration.endpoint)
            {
                state.withLock { $0.map.assign(slot: moved.slot, to: moved.endpoint) }
                requestRefresh()
                return attempt < Self.maximumRedirections ? .moved : .done
            }
            if message.hasPrefix("ASK "),
                let asked = RedisClusterMap.redirection(message, template: configuration.endpoint)
            {
                return attempt < Self.maximumRedirections ? .ask(asked.endpoint) : .done
            }
            // Not carried out: a multi-key command or a function met a slot that is moving (a
            // function fails before its first write, see ``RedisFunctionLibrary``), or the cluster
            // is failing over.
            if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") || message.contains("TRYAGAIN ")
                || message.contains("non local key")
            {
                requestRefresh()
                return .retry
            }
            return .done
        case .failure(let error) where error.code == .connect:
            // No connection to that primary was open: the command was never written.
            requestRefresh()
            return .retry
        default:
            return .done
        }
    }

    /// Sends the commands again after a pause if the timeout allows; otherwise fails them with
    /// `failure()`, or `timeout`.
    private func retryOrFail(_ routing: Routing, attempt: Int, failure: @Sendable () -> RedisClientError?) {
        let pause = UInt64(Self.retryPause / .nanoseconds(1))
        let timeout = UInt64(configuration.timeout / .nanoseconds(1))
        guard RedisClient.now() + pause < routing.started + timeout, !isClosed.load(ordering: .relaxed) else {
            let error =
                failure()
                ?? RedisClientError(code: .timeout, message: "the Redis Cluster did not serve the slot in time")
            return routing.completion(routing.commands.map { _ in .failure(error) })
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(pause))) { [self] in
            route(routing, asking: nil, attempt: attempt)
        }
    }

    /// The client of `endpoint`, created when there is none yet.
    func client(for endpoint: RedisEndpoint) -> RedisClient {
        if let known = state.withLock({ $0.nodes[endpoint] }) { return known }
        var node = configuration
        node.endpoint = endpoint
        let created = RedisClient(configuration: node)
        let (kept, isNew) = state.withLock { state -> (RedisClient, Bool) in
            if let raced = state.nodes[endpoint] { return (raced, false) }
            state.nodes[endpoint] = created
            return (created, true)
        }
        if isNew {
            if let prepare = preparesNode.withLock({ $0 }) {
                DispatchQueue.global().async { prepare(created) }
            }
        } else {
            DispatchQueue.global().async { created.close() }
        }
        return kept
    }
}

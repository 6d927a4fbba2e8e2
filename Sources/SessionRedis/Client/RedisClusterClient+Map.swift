import Dispatch
import Logging
import Synchronization

extension RedisClusterClient {
    // MARK: The map

    /// Reads the map again soon (at most every 100 ms).
    func requestRefresh() {
        let schedule = state.withLock { state -> Bool in
            guard !state.refreshRequested else { return false }
            state.refreshRequested = true
            return true
        }
        guard schedule else { return }
        let earliest = state.withLock { $0.lastRefresh } + 100_000_000
        let now = RedisClient.now()
        let delay = earliest > now ? Int(earliest - now) : 0
        refreshQueue.asyncAfter(deadline: .now() + .nanoseconds(delay)) { [weak self] in self?.refreshMap() }
    }

    /// Reads the map from a primary that answers (or a seed), keeps it, and closes the clients of
    /// nodes that are no longer primaries.
    func refreshMap() {
        guard !isClosed.load(ordering: .relaxed) else { return }
        let (known, nodes) = state.withLock { ($0.map.primaries, $0.nodes) }
        var map: RedisClusterMap?
        for endpoint in known where map == nil {
            guard let node = nodes[endpoint], node.isUp,
                case .success(let reply) = node.sendAndWait(["CLUSTER", "SLOTS"])
            else { continue }
            map = RedisClusterMap(reply: reply, template: configuration.endpoint, answeredBy: endpoint)
        }
        if map == nil {
            map = Self.readMap(from: seeds + known, template: configuration.endpoint, timeout: configuration.timeout)
        }
        let (retired, previous) = state.withLock { state -> ([RedisClient], RedisClusterMap?) in
            state.lastRefresh = RedisClient.now()
            state.refreshRequested = false
            guard let map, map.coversEverySlot || !state.map.coversEverySlot else { return ([], nil) }
            let previous = state.map
            state.map = map
            state.mapReads += 1
            let gone = state.nodes.keys.filter { !map.primaries.contains($0) }
            let retired = gone.compactMap { endpoint in
                let client = state.nodes.removeValue(forKey: endpoint)
                if let client { state.retired.add(client.statistics) }
                return client
            }
            return (retired, previous)
        }
        if let map, let previous, case let moved = map.slotsServedElsewhere(than: previous), moved > 0 {
            logger.notice(
                "Redis Cluster slots changed primary",
                metadata: [
                    "slots": "\(moved)", "primaries": "\(map.primaries.map(\.description).joined(separator: ","))",
                    "uncovered_slots": "\(RedisHashSlot.count - map.slotCounts.reduce(0, +))",
                ]
            )
        }
        for client in retired { DispatchQueue.global().async { client.close() } }
        if let map { for primary in map.primaries { _ = client(for: primary) } }
    }

    static func readMap(
        from seeds: [RedisEndpoint],
        template: RedisEndpoint,
        timeout: Duration
    ) -> RedisClusterMap? {
        for seed in seeds {
            guard let connection = try? RedisConnection(endpoint: seed, timeout: timeout),
                let reply = try? connection.command(["CLUSTER", "SLOTS"]),
                let map = RedisClusterMap(reply: reply, template: template, answeredBy: seed), !map.primaries.isEmpty
            else { continue }
            return map
        }
        return nil
    }
}

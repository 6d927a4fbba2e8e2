/// Which primary of a Redis Cluster serves each hash slot, as `CLUSTER SLOTS` tells it.
struct RedisClusterMap: Sendable, Equatable {
    /// The primaries, in the order `CLUSTER SLOTS` first names them.
    private(set) var primaries: [RedisEndpoint] = []
    /// Replicas per primary (same order as ``primaries``).
    private(set) var replicaCounts: [Int] = []
    /// The index in ``primaries`` of each slot's primary; -1 for a slot no node serves.
    private var owners = [Int16](repeating: -1, count: RedisHashSlot.count)

    /// Reads a `CLUSTER SLOTS` reply; node addresses take the credentials of `template`. A node that
    /// reports no host (`""`) is the one that answered, `answeredBy`.
    init?(reply: RedisValue, template: RedisEndpoint, answeredBy: RedisEndpoint) {
        guard let ranges = reply.array else { return nil }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let first = parts[0].integer, let last = parts[1].integer,
                first >= 0, last < RedisHashSlot.count, first <= last,
                let primary = Self.endpoint(parts[2], template: template, answeredBy: answeredBy)
            else { return nil }
            let index = index(of: primary)
            replicaCounts[index] = max(replicaCounts[index], parts.count - 3)
            for slot in Int(first)...Int(last) { owners[slot] = Int16(index) }
        }
    }

    /// The primary serving `slot`, if any.
    func primary(ofSlot slot: Int) -> RedisEndpoint? {
        let owner = owners[slot]
        return owner < 0 ? nil : primaries[Int(owner)]
    }

    /// Whether every slot has a primary.
    var coversEverySlot: Bool { !owners.contains(-1) }

    /// The slots each primary serves, in the order of ``primaries``.
    var slotCounts: [Int] {
        var counts = [Int](repeating: 0, count: primaries.count)
        for owner in owners where owner >= 0 { counts[Int(owner)] += 1 }
        return counts
    }

    /// How many slots have another primary here than in `other` (or none in one of them).
    func slotsServedElsewhere(than other: RedisClusterMap) -> Int {
        (0..<RedisHashSlot.count).reduce(0) { count, slot in
            count + (primary(ofSlot: slot) == other.primary(ofSlot: slot) ? 0 : 1)
        }
    }

    /// Records that `slot` is served by `endpoint` (a `MOVED` answer), until the next full read.
    mutating func assign(slot: Int, to endpoint: RedisEndpoint) {
        guard slot >= 0, slot < RedisHashSlot.count else { return }
        owners[slot] = Int16(index(of: endpoint))
    }

    /// The index of `primary` in ``primaries``, appended when it is new.
    private mutating func index(of primary: RedisEndpoint) -> Int {
        if let known = primaries.firstIndex(of: primary) { return known }
        primaries.append(primary)
        replicaCounts.append(0)
        return primaries.count - 1
    }

    /// `[host, port, id, …]`
    private static func endpoint(
        _ value: RedisValue,
        template: RedisEndpoint,
        answeredBy: RedisEndpoint
    ) -> RedisEndpoint? {
        guard let node = value.array, node.count >= 2, let host = node[0].string, let port = node[1].integer,
            (1...65_535).contains(port)
        else { return nil }
        var endpoint = template
        endpoint.host = host.isEmpty || host == "?" ? answeredBy.host : host
        endpoint.port = Int(port)
        return endpoint
    }

    /// The node of a `MOVED`/`ASK` answer (`MOVED 3999 127.0.0.1:6381`): its slot and address.
    static func redirection(_ message: String, template: RedisEndpoint) -> (slot: Int, endpoint: RedisEndpoint)? {
        let parts = message.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), let colon = parts[2].lastIndex(of: ":"),
            let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var endpoint = template
        var host = parts[2][..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        endpoint.host = String(host)
        endpoint.port = port
        return (slot, endpoint)
    }
}

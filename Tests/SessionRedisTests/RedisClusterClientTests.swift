import Dispatch
import Glibc
import Testing

@testable import SessionRedis

@Suite struct RedisHashSlotTests {
    @Test func slotsMatchRedisClusterSpecification() {
        // CRC16/XMODEM check value, and the examples of the Redis Cluster specification.
        #expect(RedisHashSlot.of(Array("123456789".utf8)) == 0x31C3 & 16_383)
        #expect(RedisHashSlot.of(Array("foo".utf8)) == 12_182)
        #expect(RedisHashSlot.of(Array("{user1000}.following".utf8)) == RedisHashSlot.of(Array("user1000".utf8)))
        #expect(RedisHashSlot.of(Array("foo{}{bar}".utf8)) != RedisHashSlot.of(Array("bar".utf8)))
        #expect(RedisHashSlot.of(Array("foo{{bar}}zap".utf8)) == RedisHashSlot.of(Array("{bar".utf8)))
        #expect(RedisHashSlot.of(Array("foo{bar}{zap}".utf8)) == RedisHashSlot.of(Array("bar".utf8)))
    }

    @Test func aCommandIsRoutedByItsKey() {
        func slot(_ words: String...) -> Int? { RedisHashSlot.of(command: words.map { Array($0.utf8) }) }
        let partition = RedisHashSlot.of(Array("5".utf8))
        #expect(slot("FCALL", "sd1_create", "1", "sd:{5}:cfg", "x") == partition)
        #expect(slot("fcall", "sd1_stats", "0") == nil)
        #expect(slot("XREAD", "COUNT", "10", "STREAMS", "sd:{5}:ev", "0-0") == partition)
        #expect(slot("HMGET", "sd:{5}:k:abc", "id") == partition)
        #expect(slot("TIME") == nil)
        #expect(slot("INFO", "server") == nil)
        #expect(slot("WAIT", "1", "100") == nil)
        #expect(slot("xread", "streams", "sd:{5}:ev", "0-0") == partition)
        #expect(slot("Fcall_Ro", "sd1_data", "1", "sd:{5}:k:abc") == partition)
        // Names are matched whole, in any case, and nothing else.
        #expect(RedisHashSlot.isName(Array("fCaLl".utf8), "FCALL"))
        #expect(
            !RedisHashSlot.isName(Array("FCALLX".utf8), "FCALL") && !RedisHashSlot.isName(Array("FCAL".utf8), "FCALL")
        )
        #expect(!RedisHashSlot.isName(Array("F\u{03}ALL".utf8), "FCALL"))
        #expect(slot("TIMEX", "sd:{5}:x") == partition)
    }

    @Test func theSlotMapIsReadFromClusterSlots() throws {
        let template = RedisEndpoint(host: "127.0.0.1", port: 1, password: "secret")
        func node(_ port: Int64, _ id: String) -> RedisValue {
            .array([.bulk(Array("127.0.0.1".utf8)), .integer(port), .bulk(Array(id.utf8))])
        }
        let reply = RedisValue.array([
            .array([.integer(0), .integer(5460), node(7000, "a"), node(7003, "d")]),
            .array([.integer(5461), .integer(10922), node(7001, "b")]),
            .array([.integer(10923), .integer(16383), .array([.bulk([]), .integer(7002), .bulk(Array("c".utf8))])]),
        ])
        let asked = RedisEndpoint(host: "10.0.0.9", port: 7002)
        let map = try #require(RedisClusterMap(reply: reply, template: template, answeredBy: asked))
        #expect(map.primaries.map(\.port) == [7000, 7001, 7002])
        #expect(map.primaries.allSatisfy { $0.password == "secret" })
        #expect(map.primaries[2].host == "10.0.0.9")
        #expect(map.replicaCounts == [1, 0, 0])
        #expect(map.slotCounts == [5461, 5462, 5461])
        #expect(map.coversEverySlot)
        #expect(map.primary(ofSlot: 5461)?.port == 7001)
        #expect(map.slotsServedElsewhere(than: map) == 0)
        var moving = map
        moving.assign(slot: 5461, to: map.primaries[0])
        moving.assign(slot: 16383, to: RedisEndpoint(host: "127.0.0.1", port: 7005))
        #expect(moving.slotsServedElsewhere(than: map) == 2 && map.slotsServedElsewhere(than: moving) == 2)
        #expect(
            RedisClusterMap(
                reply: .array([.array([.integer(0), .integer(99_999), node(1, "x")])]),
                template: template,
                answeredBy: asked
            ) == nil
        )
        let moved = try #require(RedisClusterMap.redirection("MOVED 3999 127.0.0.1:6381", template: template))
        #expect(moved.slot == 3999 && moved.endpoint.port == 6381 && moved.endpoint.password == "secret")
        #expect(RedisClusterMap.redirection("MOVED x", template: template) == nil)
    }
}

/// Three primaries formed by hand (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`), each a `RedisProcess`
/// with its cluster bus on a free port of its own (`--cluster-port`: the default, port + 10000, may be
/// taken or past 65535), and `cluster-require-full-coverage no` (a node out of reach stops its own
/// slots only).
final class LocalCluster {
    let nodes: [RedisProcess]
    let ports: [Int]

    init() throws {
        let ports = (0..<3).map { _ in RedisProcess.freePort() }
        let busPorts = (0..<3).map { _ in RedisProcess.freePort() }
        self.ports = ports
        nodes = zip(ports, busPorts).map { port, busPort in
            RedisProcess(
                port: port,
                extraArguments: [
                    "--cluster-enabled", "yes", "--cluster-config-file", "sessiond-test-nodes-\(port).conf",
                    "--cluster-node-timeout", "1000", "--cluster-port", "\(busPort)",
                    "--cluster-require-full-coverage", "no",
                ]
            )
        }
        for node in nodes { try node.start() }
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
        for (index, port) in ports.enumerated() {
            let client = Self.client(port)
            defer { client.close() }
            _ = client.sendAndWait(["CLUSTER", "ADDSLOTSRANGE", "\(ranges[index].0)", "\(ranges[index].1)"])
            for (other, otherBus) in zip(ports, busPorts) where other != port {
                _ = client.sendAndWait(["CLUSTER", "MEET", "127.0.0.1", "\(other)", "\(otherBus)"])
            }
        }
        for _ in 0..<200 {
            let ready = ports.allSatisfy { port in
                let client = Self.client(port)
                defer { client.close() }
                guard case .success(let info) = client.sendAndWait(["CLUSTER", "INFO"]), let text = info.string else {
                    return false
                }
                return text.contains("cluster_state:ok") && text.contains("cluster_known_nodes:3")
            }
            if ready { return }
            usleep(50_000)
        }
        throw RedisProcessError(message: "the test cluster did not become ready")
    }

    static func client(_ port: Int) -> RedisClient {
        RedisClient(configuration: .init(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), timeout: .seconds(2)))
    }

    /// The node id of `port`.
    func id(_ port: Int) -> String {
        let client = Self.client(port)
        defer { client.close() }
        return (try? client.sendAndWait(["CLUSTER", "MYID"]).get().string) ?? ""
    }

    deinit {
        for node in nodes { node.stop() }
        for port in ports { unlink("/tmp/sessiond-test-nodes-\(port).conf") }
    }
}

@Suite(.serialized) struct RedisClusterClientTests {
    private func cluster(_ local: LocalCluster) throws -> RedisClusterClient {
        try RedisClusterClient(
            seeds: local.ports.map { RedisEndpoint(host: "127.0.0.1", port: $0) },
            configuration: .init(endpoint: RedisEndpoint(host: "127.0.0.1", port: local.ports[0]), timeout: .seconds(2))
        )
    }

    @Test func keysGoToTheirSlotsPrimaryAndEveryPrimaryHoldsSome() throws {
        let local = try LocalCluster()
        let client = try cluster(local)
        defer { client.close() }
        #expect(
            RedisClusterClient.isCluster(
                seeds: [RedisEndpoint(host: "127.0.0.1", port: local.ports[1])],
                timeout: .seconds(1)
            ) == true
        )
        #expect(client.map.primaries.count == 3 && client.map.coversEverySlot)
        let writes = client.sendAllAndWait((0..<300).map { ["SET", "key{\($0)}", "\($0)"].map { Array($0.utf8) } })
        #expect(writes.allSatisfy { (try? $0.get()) == .status("OK") })
        let reads = client.sendAllAndWait((0..<300).map { ["GET", "key{\($0)}"].map { Array($0.utf8) } })
        #expect(reads.enumerated().allSatisfy { (try? $0.element.get())?.string == "\($0.offset)" })
        for port in local.ports {
            let node = LocalCluster.client(port)
            defer { node.close() }
            let held = try node.sendAndWait(["DBSIZE"]).get().integer ?? 0
            #expect(held > 50, "node \(port) holds \(held) of 300 keys")
        }
        #expect(client.sendToEveryPrimaryAndWait([Array("PING".utf8)]).count == 3)
        #expect(client.isUp)
        #expect(client.statistics.errors.isEmpty)
    }

    @Test func aPrimaryOutOfReachStopsItsOwnSlotsOnly() throws {
        let local = try LocalCluster()
        let client = try cluster(local)
        defer { client.close() }
        // The first primary of the map: a command without keys went there.
        let lost = try #require(client.map.primaries.first)
        try #require(local.nodes.first { $0.port == lost.port }).stop()
        var waited = 0
        while client.isUp, waited < 500 {
            usleep(20_000)
            waited += 1
        }
        #expect(!client.isUp && client.isReachable)
        #expect(try client.sendAndWait(["TIME"]).get().array?.count == 2)
        let keys = (0..<60).map { "key{\($0)}" }
        let writes = client.sendAllAndWait(keys.map { ["SET", $0, "v"].map { Array($0.utf8) } })
        for (key, result) in zip(keys, writes) {
            let served = client.map.primary(ofSlot: RedisHashSlot.of(Array(key.utf8))) != lost
            switch result {
            case .success(let reply): #expect(served && reply == .status("OK"), "\(key): \(reply)")
            case .failure(let error): #expect(!served, "\(key): \(error)")
            }
        }
        #expect(client.statistics.isUp == false)
    }

    @Test func aMovedSlotIsFollowedAndTheMapIsReadAgain() throws {
        let local = try LocalCluster()
        let client = try cluster(local)
        defer { client.close() }
        let key = "moving{42}"
        let slot = RedisHashSlot.of(Array("42".utf8))
        #expect(try client.sendAndWait(["SET", key, "before"]).get() == .status("OK"))
        let from = try #require(client.map.primary(ofSlot: slot)?.port)
        let to = try #require(local.ports.first { $0 != from })
        let source = LocalCluster.client(from)
        let target = LocalCluster.client(to)
        defer {
            source.close()
            target.close()
        }
        // The slot's move as redis-cli does it: importing, migrating, the key, then the owner.
        _ = try target.sendAndWait(["CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", local.id(from)]).get()
        _ = try source.sendAndWait(["CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", local.id(to)]).get()
        // While it moves, a key not on the source any more is answered ASK: the client follows.
        #expect(try client.sendAndWait(["SET", "other{42}", "during"]).get() == .status("OK"))
        #expect(try source.sendAndWait(["MIGRATE", "127.0.0.1", "\(to)", key, "0", "5000"]).get() == .status("OK"))
        #expect(try client.sendAndWait(["GET", key]).get().string == "before")
        #expect(try target.sendAndWait(["DBSIZE"]).get().integer == 2)
        for port in local.ports {
            let node = LocalCluster.client(port)
            defer { node.close() }
            _ = try node.sendAndWait(["CLUSTER", "SETSLOT", "\(slot)", "NODE", local.id(to)]).get()
        }
        let readsBefore = client.mapReads
        #expect(try client.sendAndWait(["GET", key]).get().string == "before")
        #expect(client.map.primary(ofSlot: slot)?.port == to)
        var waited = 0
        while client.mapReads == readsBefore && waited < 100 {
            usleep(20_000)
            waited += 1
        }
        #expect(client.mapReads > readsBefore)
    }
}

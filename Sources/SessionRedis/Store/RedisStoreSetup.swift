import SessionCore

/// Opens a Redis store at startup: checks the server is fit to be a store (Redis 7, `noeviction`),
/// reads its persistence, loads the function library, creates the store's description if there is
/// none, and writes the configured session defaults to the store and every partition.
enum RedisStoreSetup {
    /// Runs every step; blocking (startup only).
    static func open(
        client: any RedisCommandSender,
        configuration: RedisStoreConfiguration
    ) throws(RedisStoreError)
        -> RedisStoreDescription
    {
        // Each primary must be fit: one evicting node of a cluster corrupts the partitions it serves.
        var version = "unknown"
        for server in try infoOfEveryPrimary(client, section: "server") {
            version = server["redis_version"] ?? "unknown"
            guard let major = version.split(separator: ".").first.flatMap({ Int($0) }), major >= 7 else {
                throw RedisStoreError(
                    "Redis \(version) is too old: sessiond needs Redis 7 or later (Functions, ZRANGE BYSCORE)"
                )
            }
        }
        var policy = "unknown"
        for memory in try infoOfEveryPrimary(client, section: "memory") {
            policy = memory["maxmemory_policy"] ?? "unknown"
            guard policy == "noeviction" else {
                throw RedisStoreError(
                    "Redis maxmemory-policy is \(policy): a store must not evict keys (an evicted index key corrupts it); "
                        + "set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf)"
                )
            }
        }
        let persistence = try readPersistence(client)
        let requiresFullCoverage = client is RedisClusterClient ? try readRequiresFullCoverage(client) : false
        try loadLibrary(client)
        let (id, partitions, isNew) = try openDescription(client, partitions: configuration.partitions)
        var defaults = configuration.sessionDefaults
        defaults.maxUsernameBytes = configuration.maxUsernameBytes
        let written = try writeConfiguration(client, RedisConfigurationFields(defaults).all)
        try copyConfiguration(client, written, partitions: partitions)
        return RedisStoreDescription(
            id: id,
            partitions: partitions,
            isNew: isNew,
            redisVersion: version,
            maxmemoryPolicy: policy,
            persistence: persistence,
            requiresFullCoverage: requiresFullCoverage
        )
    }

    /// Whether some primary answers `yes` to `CONFIG GET cluster-require-full-coverage`.
    static func readRequiresFullCoverage(_ client: any RedisCommandSender) throws(RedisStoreError) -> Bool {
        let replies = try everyPrimary(
            client,
            ["CONFIG", "GET", "cluster-require-full-coverage"],
            doing: "CONFIG GET cluster-require-full-coverage"
        )
        return replies.contains { reply in reply.array?.last?.string != "no" }
    }

    /// Loads the library, the store's description (with its id) and the configuration again into a
    /// Redis that lost them.
    static func restore(
        client: any RedisCommandSender,
        store: RedisStoreDescription,
        sessionDefaults: SessionStore.Configuration
    )
        throws(RedisStoreError)
    {
        try loadLibrary(client)
        _ = try openDescription(client, partitions: store.partitions, newID: store.id)
        let written = try writeConfiguration(client, RedisConfigurationFields(sessionDefaults).all)
        try copyConfiguration(client, written, partitions: store.partitions)
    }

    /// `FUNCTION LOAD REPLACE` of ``RedisFunctionLibrary`` on every primary.
    static func loadLibrary(_ client: any RedisCommandSender) throws(RedisStoreError) {
        let replies = try everyPrimary(
            client,
            ["FUNCTION", "LOAD", "REPLACE", RedisFunctionLibrary.source],
            doing: "FUNCTION LOAD"
        )
        for reply in replies where reply.string != RedisFunctionLibrary.name {
            throw RedisStoreError("FUNCTION LOAD answered \(reply)")
        }
    }

    /// Sets `fields` of the store's configuration (`sd:config`); returns the whole configuration with
    /// its new version.
    static func writeConfiguration(
        _ client: any RedisCommandSender,
        _ fields: [(String, String)]
    ) throws(RedisStoreError)
        -> RedisConfigurationFields
    {
        var arguments = ["FCALL", RedisFunctionLibrary.updateConfiguration, "1", RedisKeys.configuration]
        for (name, value) in fields { arguments += [name, value] }
        let reply = try command(client, arguments, doing: "writing the configuration")
        guard let written = RedisConfigurationFields(reply: reply) else {
            throw RedisStoreError("the configuration in \(RedisKeys.configuration) is unreadable: \(reply)")
        }
        return written
    }

    /// Writes `configuration` to every partition that holds an older version.
    static func copyConfiguration(
        _ client: any RedisCommandSender,
        _ configuration: RedisConfigurationFields,
        partitions: Int
    )
        throws(RedisStoreError)
    {
        let replies = client.sendAllAndWait((0..<partitions).map { configuration.copyCommand(partition: $0) })
        for reply in replies {
            switch reply {
            case .success(.error(let message)): throw RedisStoreError("copying the configuration: \(message)")
            case .failure(let error): throw RedisStoreError("copying the configuration: \(error)")
            case .success: continue
            }
        }
    }

    // MARK: Private

    /// Reads the store's description, creating it (with `newID`, or a random one) when there is none.
    private static func openDescription(
        _ client: any RedisCommandSender,
        partitions: Int,
        newID: String? = nil
    )
        throws(RedisStoreError) -> (id: String, partitions: Int, isNew: Bool)
    {
        let newID = newID ?? (0..<12).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
        let now = Int64(SystemSessionClock().nowMilliseconds())
        let reply = try command(
            client,
            ["FCALL", RedisFunctionLibrary.openStore, "1", RedisKeys.meta, newID, "\(partitions)", "\(now)"],
            doing: "opening the store"
        )
        guard let fields = reply.array, fields.count == 3, let id = fields[0].string,
            let count = fields[1].integer, count >= 1, count <= 65_536, let created = fields[2].integer
        else { throw RedisStoreError("the store description in \(RedisKeys.meta) is unreadable: \(reply)") }
        return (id, Int(count), created == 1)
    }

    private static func readPersistence(_ client: any RedisCommandSender) throws(RedisStoreError) -> String {
        let persistence = try info(client, section: "persistence")
        if persistence["aof_enabled"] == "1" {
            let fsync: String
            switch client.sendAndWait(["CONFIG", "GET", "appendfsync"]) {
            case .success(let value):
                fsync = value.array.flatMap { $0.count == 2 ? $0[1].string : nil } ?? "unknown"
            case .failure:
                fsync = "unknown"
            }
            return "aof appendfsync=\(fsync)"
        }
        switch client.sendAndWait(["CONFIG", "GET", "save"]) {
        case .success(let value):
            let save = value.array.flatMap { $0.count == 2 ? $0[1].string : nil }
            guard let save else { return "unknown" }
            return save.isEmpty ? "none" : "rdb only"
        case .failure:
            return "unknown"
        }
    }

    /// `connected_slaves` of `INFO replication` on one server; `nil` when it cannot be read.
    static func connectedReplicas(_ node: RedisClient) -> Int? {
        (try? info(node, section: "replication"))?["connected_slaves"].flatMap { Int($0) }
    }

    private static func info(
        _ client: any RedisCommandSender,
        section: String
    ) throws(RedisStoreError) -> [String: String] {
        try infoOfEveryPrimary(client, section: section)[0]
    }

    /// `INFO section` of every primary, as fields.
    private static func infoOfEveryPrimary(
        _ client: any RedisCommandSender,
        section: String
    ) throws(RedisStoreError) -> [[String: String]] {
        try everyPrimary(client, ["INFO", section], doing: "INFO \(section)").map { reply in
            var fields: [String: String] = [:]
            for line in (reply.string ?? "").split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }) {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
            }
            return fields
        }
    }

    /// A command without keys on every primary; throws on the first that fails.
    private static func everyPrimary(
        _ client: any RedisCommandSender,
        _ arguments: [String],
        doing step: String
    ) throws(RedisStoreError) -> [RedisValue] {
        var replies: [RedisValue] = []
        for result in client.sendToEveryPrimaryAndWait(arguments.map { Array($0.utf8) }) {
            replies.append(try reply(result, client, doing: step))
        }
        guard !replies.isEmpty else {
            throw RedisStoreError("\(step): no Redis primary (\(client.endpointDescription))")
        }
        return replies
    }

    private static func command(
        _ client: any RedisCommandSender,
        _ arguments: [String],
        doing step: String
    ) throws(RedisStoreError)
        -> RedisValue
    {
        try reply(client.sendAndWait(arguments), client, doing: step)
    }

    /// The reply in `result`; an error reply or no answer throws, naming `step`.
    private static func reply(
        _ result: Result<RedisValue, RedisClientError>,
        _ client: any RedisCommandSender,
        doing step: String
    ) throws(RedisStoreError) -> RedisValue {
        switch result {
        case .success(.error(let message)):
            throw RedisStoreError("\(step): Redis answered \(message)")
        case .success(let value):
            return value
        case .failure(let error):
            throw RedisStoreError("\(step): \(error) (\(client.endpointDescription))")
        }
    }
}

import ArgumentParser
import SessionCore
import SessionRedis

#if canImport(Glibc)
import Glibc
#endif

/// Where the sessions live with `--storage redis`, and how to reach it.
struct RedisOptions: ParsableArguments {
    @Option(
        help: """
            Redis of --storage redis: redis://[user:password@]host[:port][/db]; for a Redis Cluster, \
            several seed nodes separated by commas (the cluster is detected by itself). Put a password \
            in SESSIOND_REDIS_URL or --redis-password-file, not on the command line.
            """
    )
    var redisUrl = "redis://127.0.0.1:6379"

    @Option(help: "File holding the Redis password (overrides one in --redis-url).")
    var redisPasswordFile: String?

    @Option(help: "Seconds Redis may take to answer before a request fails with 503 storage_unavailable.")
    var redisTimeout: Double = 0.25

    @Option(help: "Connections to Redis, each pipelining the requests of many clients (one batches best).")
    var redisConnections = 1

    @Option(help: "Partitions of a store created now (an existing store keeps its own; 1 to 65536).")
    var redisPartitions = 128

    @Option(help: "Events kept in each partition's Redis stream, for instances that fall behind.")
    var redisEventsKept = 1000

    @Option(
        help: """
            Replicas that must confirm each write (Redis WAIT) before it is acknowledged, so that a \
            primary's failover loses no acknowledged login or logout; 0 does not wait.
            """
    )
    var redisWaitReplicas = 0

    @Option(
        help: """
            Seconds a write waits for --redis-wait-replicas to confirm it before it fails with 503 \
            storage_unavailable; less than --redis-timeout (default: a quarter of it, at most 0.1).
            """
    )
    var redisWaitTimeout: Double?

    /// The Redis store's configuration, checked.
    func storeConfiguration(sessions: SessionStore.Configuration) throws -> RedisStoreConfiguration {
        var seeds: [RedisEndpoint] = []
        for url in redisUrl.split(separator: ",", omittingEmptySubsequences: false) {
            do {
                let trimmed = url.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
                seeds.append(try RedisEndpoint(url: String(trimmed)))
            } catch {
                throw StartupError("--redis-url: \(error.message)")
            }
        }
        if let path = redisPasswordFile {
            guard let contents = SecurityOptions.readFile(path) else {
                throw StartupError("cannot read the Redis password file \(path)")
            }
            let password = String(
                contents.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
            )
            for index in seeds.indices { seeds[index].password = password }
        }
        let timeout = try OptionValue.milliseconds(redisTimeout, "--redis-timeout", within: 0.001...60)
        var waitTimeout: Int64?
        if let seconds = redisWaitTimeout {
            let milliseconds = try OptionValue.milliseconds(seconds, "--redis-wait-timeout", within: 0.001...60)
            guard milliseconds < timeout else {
                throw StartupError(
                    "--redis-wait-timeout must be less than --redis-timeout (\(redisTimeout) s), not \(seconds)"
                )
            }
            waitTimeout = milliseconds
        }
        guard (1...64).contains(redisConnections) else {
            throw StartupError("--redis-connections must be from 1 to 64, not \(redisConnections)")
        }
        guard (1...65_536).contains(redisPartitions) else {
            throw StartupError("--redis-partitions must be from 1 to 65536, not \(redisPartitions)")
        }
        guard (0...16).contains(redisWaitReplicas) else {
            throw StartupError("--redis-wait-replicas must be from 0 to 16, not \(redisWaitReplicas)")
        }
        guard (10...1_000_000).contains(redisEventsKept) else {
            throw StartupError("--redis-events-kept must be from 10 to 1000000, not \(redisEventsKept)")
        }
        return RedisStoreConfiguration(
            client: RedisClientConfiguration(
                endpoint: seeds[0],
                timeout: .milliseconds(timeout),
                connections: redisConnections,
                confirmationWait: waitTimeout.map { .milliseconds($0) }
            ),
            seeds: seeds,
            waitReplicas: redisWaitReplicas,
            partitions: redisPartitions,
            eventsKeptPerPartition: redisEventsKept,
            expiredTokenRetention: sessions.expiredTokenRetention,
            maxUsernameBytes: sessions.maxUsernameBytes,
            sessionDefaults: sessions
        )
    }
}

import SessionCore

/// The store's session defaults and limits as Redis keeps them (`sd:config` and every partition's
/// `cfg` hash): milliseconds, a cap of 0 for none, the policy's name, and a version that grows with
/// every change.
struct RedisConfigurationFields: Sendable, Hashable {
    var idleMilliseconds: Int64
    var lifetimeMilliseconds: Int64
    var cap: Int
    var policy: SessionStore.SessionLimitPolicy
    var maxDataBytes: Int
    var version: Int64

    init(_ configuration: SessionStore.Configuration, version: Int64 = 0) {
        idleMilliseconds = configuration.idleTimeout.milliseconds
        lifetimeMilliseconds = configuration.maxLifetime.milliseconds
        cap = configuration.maxSessionsPerUser ?? 0
        policy = configuration.sessionLimitPolicy
        maxDataBytes = configuration.maxDataBytes
        self.version = version
    }

    /// From the reply `{idle, life, cap, policy, maxdata, ver}`.
    init?(reply: RedisValue) {
        guard let fields = reply.array, fields.count == 6,
            let idle = fields[0].integer, let life = fields[1].integer, let cap = fields[2].integer,
            let policy = fields[3].string.flatMap(SessionStore.SessionLimitPolicy.init(rawValue:)),
            let maxData = fields[4].integer, let version = fields[5].integer
        else { return nil }
        idleMilliseconds = idle
        lifetimeMilliseconds = life
        self.cap = Int(cap)
        self.policy = policy
        maxDataBytes = Int(maxData)
        self.version = version
    }

    /// Every field but the version, as `sd1_update_configuration` takes them.
    var all: [(String, String)] {
        [
            ("idle", "\(idleMilliseconds)"), ("life", "\(lifetimeMilliseconds)"), ("cap", "\(cap)"),
            ("policy", policy.rawValue), ("maxdata", "\(maxDataBytes)"),
        ]
    }

    /// The fields a change sets.
    static func fields(of change: SessionConfigurationChange) -> [(String, String)] {
        var fields: [(String, String)] = []
        if let idle = change.idleTimeout { fields.append(("idle", "\(idle.milliseconds)")) }
        if let life = change.maxLifetime { fields.append(("life", "\(life.milliseconds)")) }
        if let cap = change.maxSessionsPerUser { fields.append(("cap", "\(cap ?? 0)")) }
        if let policy = change.sessionLimitPolicy { fields.append(("policy", policy.rawValue)) }
        if let maxData = change.maxDataBytes { fields.append(("maxdata", "\(maxData)")) }
        return fields
    }

    /// `base` with these defaults and limits.
    func applied(to base: SessionStore.Configuration) -> SessionStore.Configuration {
        var configuration = base
        configuration.idleTimeout = .milliseconds(idleMilliseconds)
        configuration.maxLifetime = .milliseconds(lifetimeMilliseconds)
        configuration.maxSessionsPerUser = cap > 0 ? cap : nil
        configuration.sessionLimitPolicy = policy
        configuration.maxDataBytes = maxDataBytes
        return configuration
    }

    /// `FCALL sd1_configure` of one partition.
    func copyCommand(partition: Int) -> [[UInt8]] {
        [
            "FCALL", RedisFunctionLibrary.configure, "1", RedisKeys.partitionConfiguration(partition),
            "\(idleMilliseconds)", "\(lifetimeMilliseconds)", "\(cap)", policy.rawValue, "\(maxDataBytes)",
            "\(version)",
        ].map { Array($0.utf8) }
    }
}

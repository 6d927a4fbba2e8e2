import SessionCore
import Synchronization

extension RedisSessionBackend {
    // MARK: Configuration

    public func configuration() -> SessionReply<SessionStore.Configuration> {
        let promise = SessionPromise<SessionStore.Configuration>()
        let command = ["HMGET", RedisKeys.configuration, "idle", "life", "cap", "policy", "maxdata", "ver"]
        send(command.map { Array($0.utf8) }, operation: "configuration") { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let fields = RedisConfigurationFields(reply: reply) else {
                    return promise.fail(Self.malformedReply("configuration"))
                }
                promise.succeed(remember(fields))
            }
        }
        return .pending(promise)
    }

    public func updateConfiguration(_ change: SessionConfigurationChange) -> SessionReply<SessionStore.Configuration> {
        var checked = knownConfiguration.withLock { $0 }
        change.apply(to: &checked)
        do {
            try checked.validate()
        } catch {
            return .failure(error)
        }
        let promise = SessionPromise<SessionStore.Configuration>()
        var command = ["FCALL", RedisFunctionLibrary.updateConfiguration, "1", RedisKeys.configuration]
        for (name, value) in RedisConfigurationFields.fields(of: change) { command += [name, value] }
        send(command.map { Array($0.utf8) }, operation: "configure") { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let fields = RedisConfigurationFields(reply: reply) else {
                    return promise.fail(Self.malformedReply("configure"))
                }
                copyToPartitions(fields) { error in
                    if let error { return promise.fail(error) }
                    promise.succeed(self.remember(fields))
                }
            }
        }
        return .pending(promise)
    }

    /// Writes `fields` to every partition that holds an older version (the partitions' copies are what
    /// the functions read).
    func copyToPartitions(_ fields: RedisConfigurationFields, completion: @escaping @Sendable (SessionError?) -> Void) {
        client.sendAll((0..<store.partitions).map { fields.copyCommand(partition: $0) }) { [self] results in
            for result in results {
                if case .failure(let error) = interpret(result, operation: "configure") { return completion(error) }
            }
            completion(nil)
        }
    }

    /// Keeps `fields` as the known configuration and returns it.
    func remember(_ fields: RedisConfigurationFields) -> SessionStore.Configuration {
        knownConfiguration.withLock { known in
            known = fields.applied(to: known)
            return known
        }
    }

    // MARK: Statistics

    /// The store gauges read from every partition (O(partitions), one pipelined batch) and this
    /// instance's counters. Never fails: while Redis cannot be read, the gauges are marked unavailable.
    public func statistics() -> SessionReply<SessionStatistics> {
        let promise = SessionPromise<SessionStatistics>()
        var base = SessionStatistics()
        base.storeID = store.id
        counters.fill(&base)
        base.droppedEvents = events.droppedEventCount
        base.slowSubscribersDisconnected = events.slowConsumersDisconnectedCount
        let commands = (0..<store.partitions).map {
            command(RedisFunctionLibrary.statistics, partition: $0, withContext: false, [])
        }
        let started = RedisClient.now()
        client.sendAll(commands) { [self, base] results in
            recordDuration("statistics", since: started)
            var statistics = base
            for result in results {
                guard case .success(let reply) = interpret(result, operation: "statistics"), let counts = reply.array,
                    counts.count >= 5
                else {
                    statistics.storeGaugesAvailable = false
                    break
                }
                let values = counts.map { Int($0.integer ?? 0) }
                statistics.activeSessions += values[0]
                statistics.realtimeUsers += values[1]
                statistics.usersSeenLastMinute += values[2]
                statistics.usersSeenLast5Minutes += values[3]
                statistics.usersSeenLast15Minutes += values[4]
            }
            if !statistics.storeGaugesAvailable {
                statistics.activeSessions = 0
                statistics.realtimeUsers = 0
                statistics.usersSeenLastMinute = 0
                statistics.usersSeenLast5Minutes = 0
                statistics.usersSeenLast15Minutes = 0
            }
            promise.succeed(statistics)
        }
        return .pending(promise)
    }
}

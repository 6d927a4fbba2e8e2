import DequeModule
import Dispatch
import Synchronization

/// A few pipelined connections to one Redis server, for callers that must not wait: every command is
/// answered through a completion, called on the connection's reader thread.
///
/// A command joins its connection's queue of commands awaiting an answer (under that connection's
/// lock, so the bytes sent and the queue keep one order). The caller's thread writes it at once when
/// nothing else awaits an answer on that connection; otherwise the connection's reader thread writes
/// it, with everything else queued meanwhile, as soon as it has taken the answers already come. The
/// reader completes the oldest waiting command with each answer. Under load one write and one read
/// carry the commands of many callers, and nobody waits longer than the answers already on their way.
///
/// Failing closed: a command not answered within ``RedisClientConfiguration/timeout`` fails with
/// `timeout`; while no connection is open (Redis unreachable), commands fail at once with `connect`,
/// and the connections are opened again in the background with a growing pause (100 ms to 1 s). A
/// command is never sent twice: one whose connection failed after it was written fails, because it
/// may or may not have been carried out.
///
/// ```swift
/// let client = RedisClient(configuration: .init(endpoint: try RedisEndpoint(url: "redis://127.0.0.1:6379")))
/// client.send(["PING"]) { result in print(result) }
/// ```
public final class RedisClient: RedisCommandSender {
    public typealias Completion = @Sendable (Result<RedisValue, RedisClientError>) -> Void

    public let configuration: RedisClientConfiguration
    let slots: [RedisConnectionSlot]
    /// The connection of the writes that replicas must confirm (with ``RedisClientConfiguration/confirmingReplicas``).
    let confirmingSlot: RedisConnectionSlot?
    private let counters = Mutex(RedisClientStatistics())
    private let nextSlot = Atomic<Int>(0)
    private let isClosed = Atomic<Bool>(false)
    private let stopped = DispatchGroup()
    /// Dispatch sources are thread-safe (created here, cancelled once by ``close()``), but not `Sendable`.
    private nonisolated(unsafe) let watchdog: any DispatchSourceTimer
    let timeoutNanoseconds: UInt64

    /// Opens the connections (waiting for the first attempt of each: startup can tell an unreachable
    /// Redis at once) and starts their reader threads.
    public init(configuration: RedisClientConfiguration) {
        self.configuration = configuration
        timeoutNanoseconds = UInt64(max(1, configuration.timeout / .nanoseconds(1)))
        slots = (0..<max(1, configuration.connections)).map { RedisConnectionSlot(index: $0) }
        if configuration.confirmingReplicas > 0 {
            confirmingSlot = RedisConnectionSlot(
                index: slots.count,
                confirmation: .init(
                    replicas: configuration.confirmingReplicas,
                    wait: configuration.confirmationWait,
                    timeout: configuration.timeout
                )
            )
        } else {
            confirmingSlot = nil
        }
        watchdog = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "sessiond.redis.watchdog"))
        let period = max(Duration.milliseconds(5), configuration.timeout / 4)
        watchdog.schedule(
            deadline: .now() + .nanoseconds(Int(period / .nanoseconds(1))),
            repeating: .nanoseconds(Int(period / .nanoseconds(1)))
        )
        watchdog.setEventHandler { [weak self] in self?.failOverdue() }
        watchdog.resume()
        let opened = DispatchGroup()
        for slot in allSlots {
            opened.enter()
            stopped.enter()
            DispatchQueue(label: "sessiond.redis.connection-\(slot.index)").async { [self] in
                RedisConnectionReader(client: self, slot: slot, firstAttemptDone: { opened.leave() }).run()
                stopped.leave()
            }
        }
        opened.wait()
    }

    /// Sends one command; `completion` gets its answer (an error reply is a successful
    /// ``RedisValue/error(_:)``), or why there is none.
    public func send(_ arguments: [[UInt8]], completion: @escaping Completion) {
        let request = RedisRequest(deadline: Self.now() + timeoutNanoseconds, completion: completion)
        dispatch(Self.encoded(arguments), [request])
    }

    /// Sends several commands together, on one connection and in one write (they are carried out
    /// in order, though not atomically); `completion` gets their answers in order once every one is
    /// known, or the failure of each.
    public func sendPipelined(
        _ commands: [[[UInt8]]],
        completion: @escaping @Sendable ([Result<RedisValue, RedisClientError>]) -> Void
    ) {
        guard !commands.isEmpty else { return completion([]) }
        let collector = RedisResultCollector(count: commands.count, completion: completion)
        let deadline = Self.now() + timeoutNanoseconds
        var encoded: [UInt8] = []
        for command in commands { RedisConnection.encode(command, into: &encoded) }
        let requests = (0..<commands.count).map { index in
            RedisRequest(deadline: deadline) { collector.set(index, $0) }
        }
        dispatch(encoded, requests)
    }

    /// Sends a write that ``RedisClientConfiguration/confirmingReplicas`` replicas must hold before
    /// it is answered (see ``RedisConfirmedWrite``): on its own connection, with the writes queued
    /// meanwhile, followed by one `WAIT` for them all. A write the replicas did not confirm in time
    /// fails with ``RedisClientError/Code/unconfirmed``. Without confirming replicas, the same as
    /// ``send(_:completion:)``.
    public func sendConfirmed(_ arguments: [[UInt8]], completion: @escaping Completion) {
        guard confirmingSlot != nil else { return send(arguments, completion: completion) }
        let write = RedisConfirmedWrite(completion: completion)
        let request = RedisRequest(deadline: Self.now() + timeoutNanoseconds) { write.answered($0) }
        dispatch(Self.encoded(arguments), [request], confirming: [write])
    }

    /// One command in RESP, in a buffer sized for it.
    private static func encoded(_ arguments: [[UInt8]]) -> [UInt8] {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(64 + arguments.reduce(0) { $0 + $1.count + 16 })
        RedisConnection.encode(arguments, into: &encoded)
        return encoded
    }

    /// Hands encoded commands to the first connection that is open, or fails them. Writes that
    /// replicas must confirm (`confirming`) go to the confirming connection only.
    private func dispatch(_ encoded: [UInt8], _ requests: [RedisRequest], confirming: [RedisConfirmedWrite] = []) {
        guard !isClosed.load(ordering: .relaxed) else {
            for request in requests {
                request.complete(.failure(RedisClientError(code: .closed, message: "the Redis client is closed")))
            }
            return
        }
        if let confirmingSlot, !confirming.isEmpty {
            if confirmingSlot.write(encoded, requests, confirming: confirming) { return }
        } else {
            let first = nextSlot.add(1, ordering: .relaxed).oldValue
            for offset in 0..<slots.count where slots[(first + offset) % slots.count].write(encoded, requests) {
                return
            }
        }
        record(.connect, count: requests.count)
        for request in requests {
            request.complete(.failure(RedisClientError(code: .connect, message: "Redis is unreachable")))
        }
    }

    /// Whether a connection is open.
    public var isUp: Bool { slots.contains { $0.isConnected } }

    public var isReachable: Bool { isUp }

    public var endpointDescription: String { "\(configuration.endpoint)" }

    public func server(of command: [[UInt8]]) -> RedisEndpoint? { configuration.endpoint }

    /// `arguments` to this one server.
    public func sendToEveryPrimaryAndWait(_ arguments: [[UInt8]]) -> [Result<RedisValue, RedisClientError>] {
        [sendAndWait(arguments)]
    }

    /// Counts so far.
    public var statistics: RedisClientStatistics {
        var statistics = counters.withLock { $0 }
        statistics.isUp = isUp
        return statistics
    }

    /// Counts an error reply (`-ERR`, `-OOM`, `-READONLY`, `-LOADING`, …) that a caller could not use:
    /// Redis answered, but not with what was asked.
    public func recordErrorReply() { record(.reply) }

    public func recordError(_ code: RedisClientError.Code) { record(code) }

    /// Closes the connections (what waits for an answer fails) and waits for their threads to end.
    public func close() {
        guard !isClosed.exchange(true, ordering: .relaxed) else { return }
        for slot in allSlots { slot.close() }
        stopped.wait()
        watchdog.cancel()
    }

    var closed: Bool { isClosed.load(ordering: .relaxed) }

    /// Every connection, the confirming one included.
    private var allSlots: [RedisConnectionSlot] { slots + (confirmingSlot.map { [$0] } ?? []) }

    // MARK: For the readers

    func record(_ code: RedisClientError.Code, count: Int = 1) {
        guard count > 0 else { return }
        counters.withLock { $0.errors[code, default: 0] += count }
    }

    func recordReconnect() {
        counters.withLock { $0.reconnects += 1 }
    }

    /// The current time in the units of request deadlines.
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Fails the commands whose deadline has passed (Redis answers, but too slowly): they are answered
    /// `timeout` now, and their late answers are dropped when they come.
    private func failOverdue() {
        let now = Self.now()
        var overdue = 0
        for slot in allSlots {
            for request in slot.overdue(now: now)
            where request.complete(.failure(RedisClientError(code: .timeout, message: "no answer from Redis in time")))
            {
                overdue += 1
            }
        }
        record(.timeout, count: overdue)
    }
}

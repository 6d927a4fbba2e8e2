import Dispatch
import SessionCore
import Synchronization

/// The event feed of a Redis store: every partition's stream (`sd:{p}:ev`), read by one thread on its
/// own connection and merged into one order that every instance shares.
///
/// **One order everywhere.** An event's position is its stream entry id (Redis's clock in
/// milliseconds, a sequence) and its partition. The tail delivers events in position order, and only
/// once no event can still appear before them: it reads Redis's `TIME` and the streams in one
/// `MULTI` transaction, and delivers the entries older than that millisecond (any entry added later
/// gets a later id). So two instances deliver the same events in the same order, and a subscriber may
/// resume on any instance with the id it last saw (`<store>:<ms>-<seq>:<partition>`).
///
/// **Nothing missed.** The tail waits with `XREAD BLOCK` from its own positions, also after a
/// reconnect (never from `$`). At start it reads the newest entries of every partition (32 each), so
/// that subscribers of other instances can resume here at once. When entries it had not read were
/// trimmed meanwhile (`max-deleted-entry-id` past its position), or the store was replaced, it tells
/// subscribers there is a gap.
///
/// **On a Redis Cluster** a command reads one slot, so one stream: each look sends, for every
/// partition, `TIME` and then `XREAD` of its stream, together to the partition's primary (through
/// ``RedisClusterClient``, which follows the slots as they move). An entry the `XREAD` did not return
/// gets an id at or past that `TIME` on that node, so the entries older than the smallest `TIME` of
/// the look are complete. There is no blocking read over several slots: the tail looks every 20 ms
/// while events flow and every 50 ms when quiet.
public final class RedisEventTail: SessionEventFeed {
    /// Where the streams are read.
    enum Source {
        /// One server, on the tail's own connection.
        case server(RedisEndpoint)
        /// A cluster, through the store's client.
        case cluster(RedisClusterClient)
    }

    private let source: Source
    let partitions: Int
    private let storeID: String
    /// Every partition's stream key, in partition order: the keys of each `XREAD`.
    let streamKeys: [[UInt8]]
    private let observers = Mutex<[@Sendable (SessionFeedItem) -> Void]>([])
    let isStopped = Atomic<Bool>(false)
    private let finished = DispatchGroup()
    private let delivered = Atomic<Int>(0)
    /// How long `XREAD BLOCK` waits before looking again (and checking for a stop).
    static let blockMilliseconds = 1000
    /// The pause between two looks at the streams while events flow.
    static let lookInterval = Duration.milliseconds(5)
    /// The newest entries read from each partition at start.
    static let primingCount = 32
    /// The pause between two looks on a cluster while events flow, and while quiet.
    static let clusterLookIntervals = (flowing: Duration.milliseconds(20), quiet: Duration.milliseconds(50))

    init(source: Source, store: RedisStoreDescription) {
        self.source = source
        partitions = store.partitions
        storeID = store.id
        streamKeys = (0..<store.partitions).map { Array(RedisKeys.events($0).utf8) }
    }

    public func observe(_ observer: @escaping @Sendable (SessionFeedItem) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    public func eventID(of position: SessionEventPosition) -> String {
        "\(storeID):\(position.major)-\(position.minor):\(position.partition)"
    }

    public func position(ofEventID id: String) -> SessionEventPosition? {
        let parts = id.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == storeID, let partition = UInt32(parts[2]), partition < partitions,
            let entry = Self.entryPosition(parts[1])
        else { return nil }
        return SessionEventPosition(major: entry.major, minor: entry.minor, partition: partition)
    }

    public var keepsHistoryFromStart: Bool { true }
    /// Ten seconds of Redis's clock.
    public var resumeAheadAllowance: UInt64? { 10_000 }

    /// Events delivered so far.
    public var deliveredCount: Int { delivered.load(ordering: .relaxed) }

    /// Starts the tail's thread.
    func start() {
        finished.enter()
        DispatchQueue(label: "sessiond.redis.events").async { [self] in
            switch source {
            case .server(let endpoint): run(endpoint)
            case .cluster(let client): run(client)
            }
            finished.leave()
        }
    }

    /// Stops the tail and waits for its thread (at most one `XREAD BLOCK`).
    func stop() {
        isStopped.store(true, ordering: .relaxed)
        finished.wait()
    }

    // MARK: The tail's thread

    struct Entry {
        var position: SessionEventPosition
        var event: SessionEvent
    }

    /// Sends commands and reads their answers, in order (an error reply is an answer).
    typealias Exchange = ([[[UInt8]]]) throws(RedisClientError) -> [RedisValue]

    private func run(_ endpoint: RedisEndpoint) {
        var cursors: [String]?
        var latest = SessionEventPosition.zero
        var pause = Duration.milliseconds(100)
        while !isStopped.load(ordering: .relaxed) {
            let connection: RedisConnection
            do {
                connection = try RedisConnection(
                    endpoint: endpoint,
                    timeout: .milliseconds(Self.blockMilliseconds) + .seconds(2)
                )
                let exchange: Exchange = { commands throws(RedisClientError) in
                    for command in commands { try connection.append(command) }
                    var replies: [RedisValue] = []
                    for _ in commands { replies.append(try connection.readReply()) }
                    return replies
                }
                if let known = cursors {
                    cursors = try checkContinuity(exchange, cursors: known, latest: &latest)
                } else {
                    cursors = try prime(exchange, latest: &latest)
                }
                pause = .milliseconds(100)
                try follow(connection, cursors: &cursors!, latest: &latest)
            } catch {
                // Redis unreachable or the connection failed: try again, from the same positions.
                Self.sleep(pause)
                pause = min(pause * 2, .seconds(1))
            }
        }
    }

    /// Delivers, in position order, the pending entries older than `watermark` (Redis milliseconds:
    /// no entry can still appear before them) and keeps the rest.
    func deliverComplete(_ pending: inout [Entry], before watermark: UInt64, latest: inout SessionEventPosition) {
        pending.sort { $0.position < $1.position }
        let complete = pending.prefix { $0.position.major < watermark }
        for entry in complete {
            deliver(.event(entry.event, entry.position))
            latest = entry.position
        }
        pending.removeFirst(complete.count)
    }

    /// Reads the newest entries of every partition and delivers the part of the merged order they
    /// cover completely; returns every partition's position.
    func prime(
        _ exchange: Exchange,
        latest: inout SessionEventPosition
    ) throws(RedisClientError)
        -> [String]
    {
        let replies = try exchange(
            (0..<partitions).map { partition in
                ["XREVRANGE", RedisKeys.events(partition), "+", "-", "COUNT", "\(Self.primingCount)"].map {
                    Array($0.utf8)
                }
            }
        )
        var entries: [Entry] = []
        var cursors: [String] = []
        var cutoff = SessionEventPosition.zero
        for (partition, reply) in replies.enumerated() {
            if case .error(let message) = reply { throw RedisClientError(code: .reply, message: message) }
            let read = (reply.array ?? []).compactMap { Self.entry($0, partition: partition) }
            cursors.append(read.first.map { "\($0.position.major)-\($0.position.minor)" } ?? "0-0")
            // A partition with a full count may have older entries: the merged order is complete only
            // after its oldest one read.
            if read.count == Self.primingCount, let oldest = read.last { cutoff = max(cutoff, oldest.position) }
            entries += read
        }
        entries.sort { $0.position < $1.position }
        deliver(.reset(cutoff))
        latest = cutoff
        for entry in entries where entry.position > cutoff {
            deliver(.event(entry.event, entry.position))
            latest = entry.position
        }
        return cursors
    }

    /// After a reconnect: whether entries after the tail's positions were trimmed, or the store was
    /// replaced (then subscribers are told of a gap and the tail starts over).
    func checkContinuity(
        _ exchange: Exchange,
        cursors: [String],
        latest: inout SessionEventPosition
    )
        throws(RedisClientError) -> [String]
    {
        let meta = try exchange([["HGET", RedisKeys.meta, "id"].map { Array($0.utf8) }])[0]
        if case .error(let message) = meta { throw RedisClientError(code: .reply, message: message) }
        guard meta.string == storeID else {
            deliver(.reset(latest))
            return Array(repeating: "0-0", count: partitions)
        }
        let replies = try exchange(
            (0..<partitions).map { ["XINFO", "STREAM", RedisKeys.events($0)].map { Array($0.utf8) } }
        )
        var lost = false
        for (partition, reply) in replies.enumerated() {
            guard let fields = reply.array else { continue }
            for index in stride(from: 0, to: fields.count - 1, by: 2)
            where fields[index].string == "max-deleted-entry-id" {
                if let deleted = fields[index + 1].string.flatMap({ Self.entryPosition(Substring($0)) }),
                    let cursor = Self.entryPosition(Substring(cursors[partition])),
                    (deleted.major, deleted.minor) > (cursor.major, cursor.minor)
                {
                    lost = true
                }
            }
        }
        if lost { deliver(.reset(latest)) }
        return cursors
    }

    /// Waits for entries, then delivers them in the shared order; returns when stopped.
    private func follow(
        _ connection: RedisConnection,
        cursors: inout [String],
        latest: inout SessionEventPosition
    )
        throws(RedisClientError)
    {
        var pending: [Entry] = []
        var flowing = false
        while !isStopped.load(ordering: .relaxed) {
            if pending.isEmpty && !flowing {
                // Quiet: wait in Redis for the next entry of any partition.
                let reply = try connection.command(
                    ["XREAD", "COUNT", "1000", "BLOCK", "\(Self.blockMilliseconds)", "STREAMS"].map { Array($0.utf8) }
                        + streamKeys + cursors.map { Array($0.utf8) }
                )
                if case .error(let message) = reply { throw RedisClientError(code: .reply, message: message) }
                pending += read(reply, cursors: &cursors)
                if pending.isEmpty { continue }
            }
            // What else arrived, and Redis's time, in one step: entries older than that millisecond
            // are complete in every partition.
            try connection.append([Array("MULTI".utf8)])
            try connection.append([Array("TIME".utf8)])
            try connection.append(
                ["XREAD", "COUNT", "1000", "STREAMS"].map { Array($0.utf8) } + streamKeys
                    + cursors.map { Array($0.utf8) }
            )
            try connection.append([Array("EXEC".utf8)])
            for _ in 0..<3 { _ = try connection.readReply() }  // +OK, +QUEUED, +QUEUED
            let exec = try connection.readReply()
            guard let results = exec.array, results.count == 2, let time = results[0].array, time.count == 2,
                let seconds = time[0].integer, let micros = time[1].integer
            else { throw RedisClientError(code: .reply, message: "unexpected answer to the event transaction") }
            let arrived = read(results[1], cursors: &cursors)
            pending += arrived
            deliverComplete(&pending, before: UInt64(seconds * 1000 + micros / 1000), latest: &latest)
            // While events flow, look again a little later rather than at once: each look reads every
            // partition's stream, so fewer, fuller looks cost Redis less (events wait ≤ 5 ms more).
            flowing = !arrived.isEmpty
            if flowing || !pending.isEmpty { Self.sleep(Self.lookInterval) }
        }
    }

    /// The entries of an `XREAD` reply; moves each partition's cursor past them.
    func read(_ reply: RedisValue, cursors: inout [String]) -> [Entry] {
        var entries: [Entry] = []
        for stream in reply.array ?? [] {
            guard let parts = stream.array, parts.count == 2, let key = parts[0].string,
                let partition = Self.partition(ofKey: key), partition < partitions
            else { continue }
            for item in parts[1].array ?? [] {
                if let id = item.array?.first?.string { cursors[partition] = id }
                if let entry = Self.entry(item, partition: partition) { entries.append(entry) }
            }
        }
        return entries
    }

    private func deliver(_ item: SessionFeedItem) {
        let list = observers.withLock { $0 }
        if case .event = item { delivered.add(1, ordering: .relaxed) }
        for observer in list { observer(item) }
    }

    // MARK: Decoding

    /// `[id, [field, value, …]]` of partition `partition`.
    private static func entry(_ value: RedisValue, partition: Int) -> Entry? {
        guard let parts = value.array, parts.count == 2, let id = parts[0].string,
            let position = entryPosition(Substring(id)), let fields = parts[1].array
        else { return nil }
        var type: [UInt8]?
        var sessionID: SessionID?
        var username: [UInt8]?
        var createdAt: Int64?
        var at: Int64?
        var reason: [UInt8]?
        for index in stride(from: 0, to: fields.count - 1, by: 2) {
            guard let name = fields[index].bytes, name.count <= 2, let value = fields[index + 1].bytes else { continue }
            switch (name.first, name.count) {
            case (UInt8(ascii: "t"), 1): type = value
            case (UInt8(ascii: "i"), 2): sessionID = value.withUnsafeBytes { SessionID(bytes: $0) }
            case (UInt8(ascii: "u"), 1): username = value
            case (UInt8(ascii: "c"), 1): createdAt = Self.integer(value)
            case (UInt8(ascii: "a"), 1): at = Self.integer(value)
            case (UInt8(ascii: "r"), 1): reason = value
            default: continue
            }
        }
        guard let type, let sessionID, let username, let createdAt, let at else { return nil }
        let kind: SessionEvent.Kind
        if type == [UInt8(ascii: "c")] {
            kind = .created
        } else if let reason = reason.flatMap({ SessionEndReason(rawValue: String(decoding: $0, as: UTF8.self)) }) {
            kind = .ended(reason)
        } else {
            return nil
        }
        let event = SessionEvent(
            kind: kind,
            id: sessionID,
            username: String(decoding: username, as: UTF8.self),
            createdAt: SessionTimestamp(millisecondsSinceEpoch: createdAt),
            at: SessionTimestamp(millisecondsSinceEpoch: at)
        )
        return Entry(
            position: SessionEventPosition(major: position.major, minor: position.minor, partition: UInt32(partition)),
            event: event
        )
    }

    /// The decimal integer of a field's bytes.
    private static func integer(_ bytes: [UInt8]) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value: Int64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// `<ms>-<seq>`
    private static func entryPosition(_ text: Substring) -> (major: UInt64, minor: UInt64)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = UInt64(parts[0]), let minor = UInt64(parts[1]) else { return nil }
        return (major, minor)
    }

    /// The partition of `sd:{p}:ev`.
    private static func partition(ofKey key: String) -> Int? {
        guard let open = key.firstIndex(of: "{"), let close = key.firstIndex(of: "}"), open < close else { return nil }
        return Int(key[key.index(after: open)..<close])
    }

    static func sleep(_ duration: Duration) {
        let semaphore = DispatchSemaphore(value: 0)
        _ = semaphore.wait(timeout: .now() + .nanoseconds(Int(duration / .nanoseconds(1))))
    }
}

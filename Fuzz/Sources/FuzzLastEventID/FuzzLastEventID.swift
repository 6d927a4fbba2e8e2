// Fuzz target: the SSE `Last-Event-ID` header, as the two event feeds parse it
// (`LocalEventFeed.position(ofEventID:)`, `<epoch>-<n>`; `RedisEventTail.position(ofEventID:)`,
// `<store>:<ms>-<seq>:<partition>`) and as `EventBroadcaster` resumes a subscriber from it (replay of
// the kept events, or a `gap` event first).
//
// Invariants:
// - Each parser accepts exactly the ids of a reference grammar written here (Swift's integer syntax:
//   an optional sign, decimal digits, in range; a partition below the store's count), with the same
//   position; the id of a parsed position parses back to that position.
// - A subscriber resuming with the id receives ": connected", then: the kept events after the id's
//   position when it is one of the kept range; a `gap` event (`evicted` for an id older than what is
//   kept, `unknown_id` for an id that does not parse or is ahead of everything) followed by every
//   kept event otherwise; nothing more when a Redis-style id is a little ahead (it is waited for).
//
// Input: the id. Every `@` in it is replaced by the local feed's epoch (random per process) for the
// local feed, and by the store id for the Redis feed, so that seeds and mutations reach the numbers.

import FuzzSupport
import Synchronization

@testable import MicroHTTP
@testable import SessionCore
@testable import SessionRedis
@testable import SessionServer

// MARK: Reference grammar

/// Swift's `UInt64(_: String)` syntax: an optional `+` (or `-` for zero), then decimal digits.
private func referenceInteger(_ text: ArraySlice<UInt8>, maximum: UInt64 = .max) -> UInt64? {
    var digits = text
    var negative = false
    if let sign = digits.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
        negative = sign == UInt8(ascii: "-")
        digits = digits.dropFirst()
    }
    guard !digits.isEmpty else { return nil }
    var value: UInt64 = 0
    for byte in digits {
        guard byte >= 0x30, byte <= 0x39 else { return nil }
        let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - 0x30))
        guard !overflow1, !overflow2 else { return nil }
        value = sum
    }
    guard value <= maximum, !negative || value == 0 else { return nil }
    return value
}

private func split(_ bytes: ArraySlice<UInt8>, _ separator: Character) -> [ArraySlice<UInt8>] {
    bytes.split(separator: UInt8(ascii: separator.unicodeScalars.first!), omittingEmptySubsequences: false)
}

private func referenceLocal(_ id: [UInt8], epoch: String) -> SessionEventPosition? {
    let parts = split(id[...], "-")
    guard parts.count == 2, Array(parts[0]) == Array(epoch.utf8), let major = referenceInteger(parts[1]) else {
        return nil
    }
    return SessionEventPosition(major: major)
}

private func referenceRedis(_ id: [UInt8], store: String, partitions: Int) -> SessionEventPosition? {
    let parts = split(id[...], ":")
    guard parts.count == 3, Array(parts[0]) == Array(store.utf8),
        let partition = referenceInteger(parts[2], maximum: UInt64(UInt32.max)), partition < partitions
    else { return nil }
    let entry = split(parts[1], "-")
    guard entry.count == 2, let major = referenceInteger(entry[0]), let minor = referenceInteger(entry[1]) else {
        return nil
    }
    return SessionEventPosition(major: major, minor: minor, partition: UInt32(partition))
}

// MARK: Feeds and broadcasters

/// A stream transport that is never parked for long: the fuzz target drains the writer itself.
private struct NoTransport: HTTPStreamTransport {
    func park() {}
    func unpark() {}
}

/// A feed with the Redis feed's ids (its real `eventID(of:)` and `position(ofEventID:)`) and its
/// resume rules, whose events the fuzz target delivers itself (a `RedisEventTail` reads them from Redis).
private final class RedisShapedFeed: SessionEventFeed {
    let tail: RedisEventTail
    private let observers = Mutex<[@Sendable (SessionFeedItem) -> Void]>([])

    init(tail: RedisEventTail) { self.tail = tail }

    func observe(_ observer: @escaping @Sendable (SessionFeedItem) -> Void) {
        observers.withLock { $0.append(observer) }
    }
    func eventID(of position: SessionEventPosition) -> String { tail.eventID(of: position) }
    func position(ofEventID id: String) -> SessionEventPosition? { tail.position(ofEventID: id) }
    var keepsHistoryFromStart: Bool { tail.keepsHistoryFromStart }
    var resumeAheadAllowance: UInt64? { tail.resumeAheadAllowance }

    func deliver(_ item: SessionFeedItem) {
        for observer in observers.withLock({ $0 }) { observer(item) }
    }
}

private let storeID = "0f1e2d3c4b5a"
private let partitions = 8
private let redisTail = RedisEventTail(
    source: .server(RedisEndpoint(host: "127.0.0.1", port: 1)),
    store: RedisStoreDescription(
        id: storeID,
        partitions: partitions,
        isNew: false,
        redisVersion: "7.0.0",
        maxmemoryPolicy: "noeviction",
        persistence: "none"
    )
)

private func event(_ number: Int) -> SessionEvent {
    var bytes = [UInt8](repeating: 0, count: 16)
    bytes[15] = UInt8(number)
    let id = bytes.withUnsafeBytes { SessionID(bytes: $0)! }
    let created = SessionTimestamp(millisecondsSinceEpoch: 1_704_067_200_000 + Int64(number) * 1000)
    return SessionEvent(
        kind: number.isMultiple(of: 3) ? .ended(.logout) : .created,
        id: id,
        username: "user\(number)",
        createdAt: created,
        at: created
    )
}

/// What a subscriber that sent `lastEventID` receives from `broadcaster` (drained at once, then closed).
private func subscription(to broadcaster: EventBroadcaster, lastEventID: String?) -> [UInt8] {
    guard let response = broadcaster.subscribe(lastEventID: lastEventID), case .stream(let stream) = response.body
    else {
        check(false, "subscription refused")
        return []
    }
    let writer = HTTPStreamWriter(bufferLimit: stream.bufferLimit, transport: NoTransport())
    stream.start(writer)
    var bytes: [UInt8] = []
    _ = writer.drain(maximum: 1 << 24) { bytes += $0 }
    writer.finish()
    writer.connectionEnded()
    return bytes
}

private let connected = Array(": connected\n\n".utf8)

/// One broadcaster with events delivered, and what a subscriber should see from it.
private struct Scenario {
    let broadcaster: EventBroadcaster
    let feed: any SessionEventFeed
    /// Every delivered event's position, in order.
    let positions: [SessionEventPosition]
    /// The frames of the events the broadcaster keeps for replay (the latest ones), oldest first.
    let keptFrames: [[UInt8]]

    var latest: SessionEventPosition { positions.last! }
    /// Every event after this position is kept (the feeds here start at zero).
    var knownFrom: SessionEventPosition {
        keptFrames.count < positions.count ? positions[positions.count - keptFrames.count - 1] : .zero
    }

    /// Delivers one event per position with `deliver`, then measures what is kept.
    init(
        feed: any SessionEventFeed,
        positions: [SessionEventPosition],
        deliver: ([SessionEvent], [SessionEventPosition]) -> Void
    ) {
        // Small buffers, so that the oldest events are no longer kept.
        broadcaster = EventBroadcaster(feed: feed, events: SessionEventHub(), maximumSubscribers: 4, bufferLimit: 2048)
        self.feed = feed
        self.positions = positions
        // Activates a feed that keeps no history before the first subscriber.
        _ = subscription(to: broadcaster, lastEventID: nil)
        deliver(positions.indices.map { event($0 + 1) }, positions)
        // An id that is no id gets every kept event after the gap: that is the kept range.
        let all = subscription(to: broadcaster, lastEventID: "not an id")
        let prefix = connected + EventBroadcaster.gapFrame(reason: "unknown_id")
        check(all.starts(with: prefix), "setup: no gap for an unknown id")
        var kept: [[UInt8]] = []
        var current: [UInt8] = []
        for line in all.dropFirst(prefix.count).split(separator: 0x0A, omittingEmptySubsequences: false) {
            if line.isEmpty {
                if !current.isEmpty { kept.append(current + [0x0A]) }
                current = []
            } else {
                current += line + [0x0A]
            }
        }
        keptFrames = kept
        check(!kept.isEmpty && kept.count < positions.count, "setup: the scenario should keep some events, not all")
    }

    /// What a subscriber should receive for an id that names `position` (nil: not an id of the feed).
    func expected(_ position: SessionEventPosition?) -> [UInt8] {
        let everything = connected + EventBroadcaster.gapFrame(reason: "unknown_id") + keptFrames.joined()
        guard let position else { return everything }
        if position <= latest {
            guard position >= knownFrom else {
                return connected + EventBroadcaster.gapFrame(reason: "evicted") + keptFrames.joined()
            }
            var out = connected
            for (kept, frame) in zip(positions.suffix(keptFrames.count), keptFrames) where kept > position {
                out += frame
            }
            return out
        }
        if let allowance = feed.resumeAheadAllowance, position.major <= latest.major + allowance {
            return connected  // waited for: the events after it come live
        }
        return everything
    }

    func received(_ lastEventID: String) -> [UInt8] { subscription(to: broadcaster, lastEventID: lastEventID) }
}

private let hub = SessionEventHub()
private let localFeed = LocalEventFeed(events: hub)
private let localScenario = Scenario(
    feed: localFeed,
    positions: (1...12).map { SessionEventPosition(major: UInt64($0)) }
) { events, _ in hub.publish(events) }
private let redisFeed = RedisShapedFeed(tail: redisTail)
private let redisScenario = Scenario(
    feed: redisFeed,
    // Several events per millisecond, on several partitions.
    positions: (0..<12).map {
        SessionEventPosition(
            major: 1_704_067_200_000 + UInt64($0 / 3) * 7,
            minor: UInt64($0 % 3),
            partition: UInt32($0 % partitions)
        )
    }
) { events, positions in
    for (event, position) in zip(events, positions) { redisFeed.deliver(.event(event, position)) }
}

private func substituting(_ bytes: [UInt8], _ replacement: String) -> [UInt8] {
    var out: [UInt8] = []
    for byte in bytes {
        if byte == UInt8(ascii: "@") { out += replacement.utf8 } else { out.append(byte) }
    }
    return out
}

private func checkLocal(_ bytes: [UInt8]) {
    let id = substituting(bytes, localFeed.epoch)
    let text = String(decoding: id, as: UTF8.self)
    let position = localFeed.position(ofEventID: text)
    let reference = String(validating: id, as: UTF8.self) == nil ? nil : referenceLocal(id, epoch: localFeed.epoch)
    check(
        position == reference,
        "local id \(text.debugDescription): \(String(describing: position)), reference \(String(describing: reference))"
    )
    if let position {
        check(localFeed.position(ofEventID: localFeed.eventID(of: position)) == position, "local id round trip")
    }
    // The API hands an empty header over as no id.
    guard !text.isEmpty else { return }
    let received = localScenario.received(text)
    check(received == localScenario.expected(position), "local replay for \(text.debugDescription)")
}

private func checkRedis(_ bytes: [UInt8]) {
    let id = substituting(bytes, storeID)
    let text = String(decoding: id, as: UTF8.self)
    let position = redisTail.position(ofEventID: text)
    let reference =
        String(validating: id, as: UTF8.self) == nil ? nil : referenceRedis(id, store: storeID, partitions: partitions)
    check(
        position == reference,
        "redis id \(text.debugDescription): \(String(describing: position)), reference \(String(describing: reference))"
    )
    if let position {
        check(redisTail.position(ofEventID: redisTail.eventID(of: position)) == position, "redis id round trip")
    }
    guard !text.isEmpty else { return }
    let received = redisScenario.received(text)
    check(received == redisScenario.expected(position), "redis replay for \(text.debugDescription)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    checkLocal(bytes)
    checkRedis(bytes)
    return 0
}

import DequeModule
import MicroHTTP
import SessionCore
import Synchronization

/// Fans session events out to Server-Sent-Events subscribers (`GET /v1/events`).
///
/// Each event is rendered once (`id: <the feed's id>`, `event: created|ended`, `data: {...}`), then
/// appended to every subscriber's bounded buffer (``bufferLimit``; the socket's kernel send buffer is
/// kept small, ``socketSendBufferBytes``, so that the limit is what a stalled subscriber can hold). A
/// subscriber whose buffer is full is disconnected (its stream is aborted: what is pending is dropped
/// and the connection closes as soon as the server can touch it); the event hub counts the events it
/// did not get (the one that did not fit and those dropped unsent) and the disconnection. The others
/// are unaffected. Frames never contain a token.
///
/// **Resuming.** The latest events are kept (up to half a subscriber's buffer, ``replayBytes``): from
/// the first subscription on with a ``LocalEventFeed``, from the start with a shared store's feed (a
/// subscriber of another instance may resume here). A subscriber that reconnects with
/// `Last-Event-ID` (as browsers' `EventSource` does by itself) first gets the events it missed, in
/// order, then the live ones: a backend forwarding logouts loses none to a dropped connection. When
/// that is not possible (the id is not one of the feed's, or the events after it are no longer kept),
/// it gets a `gap` event first (`{"type":"gap","reason":"unknown_id"|"evicted"}`), then what is kept:
/// it should reconcile, e.g. re-validate the sessions it tracks. An id a little ahead of what this
/// instance has delivered (another instance was faster) is waited for: the subscriber gets the events
/// after it. Events are delivered under one lock, so every subscriber sees them in the same order,
/// without holes.
public final class EventBroadcaster: Sendable {
    private struct State {
        var nextSubscriberID = 0
        var writers: [Int: HTTPStreamWriter] = [:]
        /// Subscribers that resumed from an id ahead of ``latest``: events up to it are not theirs.
        var skipThrough: [Int: SessionEventPosition] = [:]
        /// The position of the latest event delivered (`nil`: none yet).
        var latest: SessionEventPosition?
        /// Every event after this position is in ``recent`` (or was, and is older than what is kept).
        var knownFrom = SessionEventPosition.zero
        /// The latest events' frames, oldest first, and their total size.
        var recent = Deque<(position: SessionEventPosition, frame: [UInt8])>()
        var recentBytes = 0
        /// Slots taken by ``subscribe(lastEventID:)`` whose stream has not started yet.
        var reserved = 0
    }

    /// A subscriber slot, taken when a subscription is accepted and turned into a subscriber when its
    /// stream starts, so that the limit is decided once, with the status code (429), and never by
    /// cutting off a stream already answered with 200. A slot whose stream never starts (a `HEAD`
    /// request, a connection that failed) is given back when the response is dropped.
    private final class Reservation: Sendable {
        let broadcaster: EventBroadcaster
        private let isTaken = Atomic<Bool>(false)

        init(_ broadcaster: EventBroadcaster) { self.broadcaster = broadcaster }

        /// Marks the slot as used by a subscriber; `false` if it already was.
        func take() -> Bool { !isTaken.exchange(true, ordering: .acquiringAndReleasing) }

        deinit {
            if take() { broadcaster.state.withLock { $0.reserved -= 1 } }
        }
    }

    private let state = Mutex(State())
    /// Set by the first subscription (or at once for a feed that keeps history from the start): until
    /// then no event is rendered or kept.
    private let isActive = Atomic<Bool>(false)
    private let feed: any SessionEventFeed
    private let events: SessionEventHub
    /// Most subscribers at once.
    public let maximumSubscribers: Int
    /// Bytes a subscriber may have pending before it is disconnected.
    public let bufferLimit: Int
    /// The kernel send buffer of a subscriber's socket (Linux doubles it): about 128 events.
    public static let socketSendBufferBytes = 16 * 1024
    /// Bytes of the latest events kept for subscribers that resume (half of ``bufferLimit``, so that
    /// a replay leaves room for live events).
    public var replayBytes: Int { bufferLimit / 2 }
    /// - Parameters:
    ///   - feed: the ordered session events to stream, with their ids.
    ///   - events: where dropped events and slow subscribers are counted.
    ///   - maximumSubscribers: most subscribers at once (429 beyond).
    ///   - bufferLimit: bytes a subscriber may have pending before it is disconnected.
    public init(
        feed: any SessionEventFeed,
        events: SessionEventHub,
        maximumSubscribers: Int = 1000,
        bufferLimit: Int = 256 * 1024
    ) {
        self.feed = feed
        self.events = events
        self.maximumSubscribers = maximumSubscribers
        self.bufferLimit = bufferLimit
        if feed.keepsHistoryFromStart { isActive.store(true, ordering: .relaxed) }
        feed.observe { [weak self] item in self?.deliver(item) }
    }

    /// The number of connected subscribers.
    public var subscriberCount: Int { state.withLock { $0.writers.count } }

    /// The streaming response for a new subscriber, or `nil` when there are too many. `lastEventID`
    /// is the request's `Last-Event-ID` header, if any.
    func subscribe(lastEventID: String? = nil) -> HTTPResponse? {
        let accepted = state.withLock { state -> Bool in
            guard state.writers.count + state.reserved < maximumSubscribers else { return false }
            state.reserved += 1
            return true
        }
        guard accepted else { return nil }
        let reservation = Reservation(self)
        let configuration = HTTPStreamConfiguration(
            bufferLimit: bufferLimit,
            socketSendBufferBytes: Self.socketSendBufferBytes
        ) { [weak self] writer in
            self?.add(writer, resumingAfter: lastEventID, reservation: reservation)
        }
        return HTTPResponse(
            status: 200,
            headers: [
                ("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store"),
                ("X-Accel-Buffering", "no"),
            ],
            stream: configuration
        )
    }

    private func add(_ writer: HTTPStreamWriter, resumingAfter lastEventID: String?, reservation: Reservation) {
        isActive.store(true, ordering: .relaxed)
        // Registered and caught up under the lock, so that no live event comes before the replay or
        // is missed between the two. Writes never call back into this class; closing does (see
        // below), so it happens after the lock is released.
        let (id, isCaughtUp) = state.withLock { state -> (Int?, Bool) in
            // The slot reserved by `subscribe()` becomes this subscriber's (a stream starts once).
            guard reservation.take() else { return (nil, false) }
            state.reserved -= 1
            state.nextSubscriberID += 1
            state.writers[state.nextSubscriberID] = writer
            // An initial comment tells the client the stream is open.
            var caughtUp = writer.write(Array(": connected\n\n".utf8), isMessage: false)
            if caughtUp, let lastEventID {
                let (fitted, skipThrough) = replay(after: lastEventID, to: writer, state)
                caughtUp = fitted
                if let skipThrough { state.skipThrough[state.nextSubscriberID] = skipThrough }
            }
            return (state.nextSubscriberID, caughtUp)
        }
        guard let id else {
            writer.abort()
            return
        }
        writer.onClose { [weak self] in self?.remove(id) }
        // Only with a buffer too small for the replay; the subscriber could not be told what it missed.
        if !isCaughtUp { writer.abort() }
    }

    /// Writes what a subscriber that saw `lastEventID` missed (see the type's documentation); returns
    /// whether it fitted in the subscriber's buffer, and the position through which live events are
    /// not the subscriber's (an id ahead of what was delivered here).
    private func replay(
        after lastEventID: String,
        to writer: HTTPStreamWriter,
        _ state: State
    )
        -> (fitted: Bool, skipThrough: SessionEventPosition?)
    {
        guard let seen = feed.position(ofEventID: lastEventID) else {
            return (writeAll(state, after: nil, gap: "unknown_id", to: writer), nil)
        }
        if let latest = state.latest, seen <= latest {
            guard seen >= state.knownFrom else { return (writeAll(state, after: nil, gap: "evicted", to: writer), nil) }
            return (writeAll(state, after: seen, gap: nil, to: writer), nil)
        }
        // Ahead of everything delivered here: another instance was a moment faster.
        let latestMajor = state.latest?.major ?? state.knownFrom.major
        if let allowance = feed.resumeAheadAllowance, seen.major <= latestMajor + allowance {
            return (true, seen)
        }
        return (writeAll(state, after: nil, gap: "unknown_id", to: writer), nil)
    }

    /// Writes a gap event (when `gap` is set) and the kept events after `after` (all when `nil`).
    private func writeAll(
        _ state: State,
        after: SessionEventPosition?,
        gap: String?,
        to writer: HTTPStreamWriter
    ) -> Bool {
        var written = gap.map { writer.write(Self.gapFrame(reason: $0)) } ?? true
        for event in state.recent where written && after.map({ event.position > $0 }) ?? true {
            written = writer.write(event.frame)
        }
        return written
    }

    private func remove(_ id: Int) {
        state.withLock { state in
            state.writers.removeValue(forKey: id)
            state.skipThrough.removeValue(forKey: id)
        }
    }

    /// Sends a comment to every subscriber so that proxies and clients see the stream alive.
    public func sendKeepAlive() {
        let frame = Array(": keep-alive\n\n".utf8)
        let writers = state.withLock { Array($0.writers.values) }
        for writer in writers where !writer.write(frame, isMessage: false) && !writer.isClosed {
            disconnectSlow(writer, missing: 0)
        }
    }

    /// Disconnects every subscriber (at shutdown).
    public func finishAll() {
        let writers = state.withLock { state in
            defer { state.writers.removeAll() }
            return Array(state.writers.values)
        }
        for writer in writers { writer.finish() }
    }

    private func deliver(_ item: SessionFeedItem) {
        switch item {
        case .event(let event, let position):
            broadcast(event, at: position)
        case .reset(let position):
            let writers = state.withLock { state -> [HTTPStreamWriter] in
                state.knownFrom = max(state.knownFrom, position)
                state.latest = max(state.latest ?? position, position)
                state.recent.removeAll()
                state.recentBytes = 0
                return Array(state.writers.values)
            }
            // Subscribers connected now missed events that cannot be replayed.
            let gap = Self.gapFrame(reason: "evicted")
            for writer in writers where !writer.write(gap) && !writer.isClosed { disconnectSlow(writer, missing: 0) }
        }
    }

    private func broadcast(_ event: SessionEvent, at position: SessionEventPosition) {
        guard isActive.load(ordering: .relaxed) else {
            // Nothing is kept yet: a subscriber resuming from here or before is told of a gap.
            state.withLock { state in
                state.latest = position
                state.knownFrom = position
            }
            return
        }
        var frame = Array("id: \(feed.eventID(of: position))\n".utf8)
        frame += Self.frame(for: event)
        let keep = replayBytes
        let full = state.withLock { state -> [HTTPStreamWriter] in
            state.latest = position
            state.recent.append((position, frame))
            state.recentBytes += frame.count
            while state.recentBytes > keep, let oldest = state.recent.popFirst() {
                state.recentBytes -= oldest.frame.count
                state.knownFrom = oldest.position
            }
            var full: [HTTPStreamWriter] = []
            for (id, writer) in state.writers {
                if let skip = state.skipThrough[id] {
                    guard position > skip else { continue }
                    state.skipThrough.removeValue(forKey: id)
                }
                // A writer closed meanwhile (client gone) dropped nothing; a full one is cut off, below.
                if !writer.write(frame) && !writer.isClosed { full.append(writer) }
            }
            return full
        }
        for writer in full { disconnectSlow(writer, missing: 1) }
    }

    /// Disconnects a subscriber that cannot keep up: counts the events it did not get (`missing` that
    /// did not fit, those dropped unsent, and, when the connection ends, those handed to it that never
    /// reached its socket) and the disconnection, once. A subscriber whose stream closed meanwhile (it
    /// hung up) is not disconnected, but the `missing` events were not delivered to it all the same.
    private func disconnectSlow(_ writer: HTTPStreamWriter, missing: Int) {
        let events = events
        guard let unsent = writer.abort(whenInFlightLost: { lost in events.recordDropped(lost) }) else {
            events.recordDropped(missing)
            return
        }
        events.recordDropped(unsent + missing)
        events.recordSlowConsumerDisconnected()
    }

    /// The event that tells a resuming subscriber that it missed events which cannot be replayed.
    static func gapFrame(reason: String) -> [UInt8] {
        Array("event: gap\ndata: {\"type\":\"gap\",\"reason\":\"\(reason)\"}\n\n".utf8)
    }

    static func frame(for event: SessionEvent) -> [UInt8] {
        // The SSE event name and the JSON `type` are the same word.
        let type: String
        switch event.kind {
        case .created: type = "created"
        case .ended: type = "ended"
        }
        var json = JSONWriter(capacity: 192)
        json.beginObject()
        json.key("type")
        json.string(type)
        json.key("id")
        json.string(event.id.description)
        json.key("username")
        json.string(event.username)
        json.key("createdAt")
        json.timestamp(event.createdAt)
        json.key("at")
        json.timestamp(event.at)
        if case .ended(let reason) = event.kind {
            json.key("reason")
            json.string(reason.rawValue)
            json.key("lifetime")
            json.seconds(event.lifetime)
        }
        json.endObject()
        var frame = Array("event: ".utf8)
        frame += type.utf8
        frame += "\ndata: ".utf8
        frame += json.bytes
        frame += "\n\n".utf8
        return frame
    }
}

import DequeModule
import MicroHTTP
import SessionCore
import Synchronization

/// Fans session events out to Server-Sent-Events subscribers (`GET /v1/events`).
///
/// Each event is rendered once (`id: <epoch>-<n>`, `event: created|ended`, `data: {...}`), then
/// appended to every subscriber's bounded buffer (``bufferLimit``; the socket's kernel send buffer is
/// kept small, ``socketSendBufferBytes``, so that the limit is what a stalled subscriber can hold). A
/// subscriber whose buffer is full is disconnected (its stream is aborted: what is pending is dropped
/// and the connection closes as soon as the server can touch it); the event hub counts the events it
/// did not get (the one that did not fit and those dropped unsent) and the disconnection. The others
/// are unaffected. Frames never contain a token.
///
/// **Resuming.** From the first subscription on, the latest events are kept (up to half a
/// subscriber's buffer, ``replayBytes``). A subscriber that reconnects with `Last-Event-ID` (as
/// browsers' `EventSource` does by itself) first gets the events it missed, in order, then the live
/// ones: a backend forwarding logouts loses none to a dropped connection. When that is not possible
/// (the id is from an earlier run of the process, unknown, or the events after it are no longer
/// kept), it gets a `gap` event first (`{"type":"gap","reason":"unknown_id"|"evicted"}`), then what
/// is kept: it should reconcile, e.g. re-validate the sessions it tracks. Events are numbered and
/// delivered under one lock, so every subscriber sees them in the same order, without holes.
public final class EventBroadcaster: Sendable {
    private struct State {
        var nextSubscriberID = 0
        var writers: [Int: HTTPStreamWriter] = [:]
        /// Number of the latest event (0: none yet).
        var sequence: UInt64 = 0
        /// The latest events' frames, oldest first, and their total size.
        var recent = Deque<(sequence: UInt64, frame: [UInt8])>()
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
    /// Set by the first subscription: until then no event is rendered or kept.
    private let isActive = Atomic<Bool>(false)
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
    /// This run's prefix of event ids: ids of an earlier run cannot be resumed.
    let epoch: String

    /// - Parameters:
    ///   - events: the session events to stream.
    ///   - maximumSubscribers: most subscribers at once (429 beyond).
    ///   - bufferLimit: bytes a subscriber may have pending before it is disconnected.
    public init(events: SessionEventHub, maximumSubscribers: Int = 1000, bufferLimit: Int = 256 * 1024) {
        self.events = events
        self.maximumSubscribers = maximumSubscribers
        self.bufferLimit = bufferLimit
        epoch = String(UInt64.random(in: 1 << 60..<UInt64.max), radix: 16)
        events.addObserver { [weak self] event in self?.broadcast(event) }
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
            if caughtUp, let lastEventID { caughtUp = replay(after: lastEventID, to: writer, state) }
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

    /// Writes what a subscriber that saw `lastEventID` missed (see the type's documentation);
    /// `false` if it did not fit in the subscriber's buffer.
    private func replay(after lastEventID: String, to writer: HTTPStreamWriter, _ state: State) -> Bool {
        let oldestKept = state.recent.first?.sequence ?? state.sequence + 1
        var next = oldestKept
        var written = true
        if let seen = sequence(of: lastEventID), seen <= state.sequence {
            if seen + 1 >= oldestKept {
                next = seen + 1
            } else {
                written = writer.write(Self.gapFrame(reason: "evicted"))
            }
        } else {
            written = writer.write(Self.gapFrame(reason: "unknown_id"))
        }
        for event in state.recent where written && event.sequence >= next {
            written = writer.write(event.frame)
        }
        return written
    }

    /// The event number in an id of this run (`<epoch>-<n>`), or `nil`.
    private func sequence(of id: String) -> UInt64? {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0] == epoch else { return nil }
        return UInt64(parts[1])
    }

    private func remove(_ id: Int) {
        _ = state.withLock { $0.writers.removeValue(forKey: id) }
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

    private func broadcast(_ event: SessionEvent) {
        guard isActive.load(ordering: .relaxed) else { return }
        let body = Self.frame(for: event)
        let keep = replayBytes
        let full = state.withLock { state -> [HTTPStreamWriter] in
            state.sequence += 1
            var frame = Array("id: \(epoch)-\(state.sequence)\n".utf8)
            frame += body
            state.recent.append((state.sequence, frame))
            state.recentBytes += frame.count
            while state.recentBytes > keep, let oldest = state.recent.popFirst() {
                state.recentBytes -= oldest.frame.count
            }
            // A writer closed meanwhile (client gone) dropped nothing; a full one is cut off, below.
            return state.writers.values.filter { !$0.write(frame) && !$0.isClosed }
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

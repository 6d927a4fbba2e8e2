import MicroHTTP
import SessionCore
import Synchronization

/// Fans session events out to Server-Sent-Events subscribers (`GET /v1/events`).
///
/// Each event is rendered once (`event: created|ended`, `data: {...}`), then appended to every
/// subscriber's bounded buffer. A subscriber whose buffer is full is disconnected (its stream is
/// aborted: nothing more is queued for it, and the connection closes as soon as the server can touch
/// it) and the event is counted as dropped on the store; the others are unaffected. Frames never
/// contain a token.
public final class EventBroadcaster: Sendable {
    private struct Subscribers {
        var nextID = 0
        var writers: [Int: HTTPStreamWriter] = [:]
    }

    private let subscribers = Mutex(Subscribers())
    private let store: SessionStore
    /// Most subscribers at once.
    public let maximumSubscribers: Int
    /// Bytes a subscriber may have pending before it is disconnected.
    public let bufferLimit: Int

    public init(store: SessionStore, maximumSubscribers: Int = 1000, bufferLimit: Int = 256 * 1024) {
        self.store = store
        self.maximumSubscribers = maximumSubscribers
        self.bufferLimit = bufferLimit
        store.events.addObserver { [weak self] event in self?.broadcast(event) }
    }

    /// The number of connected subscribers.
    public var subscriberCount: Int { subscribers.withLock { $0.writers.count } }

    /// The streaming response for a new subscriber, or `nil` when there are too many.
    func subscribe() -> HTTPResponse? {
        guard subscriberCount < maximumSubscribers else { return nil }
        let configuration = HTTPStreamConfiguration(bufferLimit: bufferLimit) { [weak self] writer in
            self?.add(writer)
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

    private func add(_ writer: HTTPStreamWriter) {
        // Checked again under the lock: several workers may have passed `subscribe()`'s check at once.
        let id = subscribers.withLock { state -> Int? in
            guard state.writers.count < maximumSubscribers else { return nil }
            state.nextID += 1
            state.writers[state.nextID] = writer
            return state.nextID
        }
        guard let id else {
            writer.abort()
            return
        }
        writer.onClose { [weak self] in self?.remove(id) }
        // An initial comment tells the client the stream is open.
        if !writer.write(Array(": connected\n\n".utf8)) { writer.finish() }
    }

    private func remove(_ id: Int) {
        _ = subscribers.withLock { $0.writers.removeValue(forKey: id) }
    }

    /// Sends a comment to every subscriber so that proxies and clients see the stream alive.
    public func sendKeepAlive() {
        send(Array(": keep-alive\n\n".utf8), countDrops: false)
    }

    /// Disconnects every subscriber (at shutdown).
    public func finishAll() {
        let writers = subscribers.withLock { state in
            defer { state.writers.removeAll() }
            return Array(state.writers.values)
        }
        for writer in writers { writer.finish() }
    }

    private func broadcast(_ event: SessionEvent) {
        guard subscriberCount > 0 else { return }
        send(Self.frame(for: event), countDrops: true)
    }

    private func send(_ frame: [UInt8], countDrops: Bool) {
        let writers = subscribers.withLock { Array($0.writers.values) }
        for writer in writers where !writer.write(frame) {
            // A writer closed meanwhile (client gone) dropped nothing; a full one is cut off.
            guard !writer.isClosed else { continue }
            writer.abort()
            if countDrops { store.events.recordDropped() }
        }
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

import Synchronization

/// Delivers ``SessionEvent``s to synchronous observers and to bounded async streams.
///
/// Observers run on a thread that changed a session, after the store's locks are released; they
/// must be cheap and must not block (metrics counters are the intended use). A session's `created`
/// reaches observers before its `ended`, even when another thread ends it while it is being created
/// (the `ended` is then delivered by the creating thread, right after the `created`). Streams buffer
/// up to their capacity; events that do not fit are dropped and counted in ``droppedEventCount``.
///
/// ```swift
/// let token = store.events.addObserver { event in
///     if case .ended(.idleTimeout) = event.kind { expiredCounter.increment() }
/// }
/// for await event in store.events.stream(bufferSize: 1024) { print(event.kind, event.id) }
/// ```
public final class SessionEventHub: Sendable {
    /// Identifies an observer for ``removeObserver(_:)``.
    public struct ObserverToken: Hashable, Sendable {
        let value: Int
    }

    private struct Observers {
        var nextToken = 0
        var list: [(token: Int, observer: @Sendable (SessionEvent) -> Void)] = []
    }

    private let observers = Mutex(Observers())
    private let observerCount = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)
    private let slowConsumersDisconnected = Atomic<Int>(0)

    /// An empty hub. A ``SessionStore`` has its own; a backend that is not a store (Redis) makes one
    /// and publishes what its operations did.
    public init() {}

    /// Calls `observer` for every future event, synchronously.
    @discardableResult
    public func addObserver(_ observer: @escaping @Sendable (SessionEvent) -> Void) -> ObserverToken {
        observers.withLock { state in
            state.nextToken += 1
            state.list.append((state.nextToken, observer))
            observerCount.store(state.list.count, ordering: .relaxed)
            return ObserverToken(value: state.nextToken)
        }
    }

    /// Stops calling the observer registered with `token`.
    public func removeObserver(_ token: ObserverToken) {
        observers.withLock { state in
            state.list.removeAll { $0.token == token.value }
            observerCount.store(state.list.count, ordering: .relaxed)
        }
    }

    /// An async sequence of future events holding at most `bufferSize` undelivered events; events
    /// beyond that are dropped (and counted) rather than slowing the store down.
    public func stream(bufferSize: Int = 1024) -> AsyncStream<SessionEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: SessionEvent.self,
            bufferingPolicy: .bufferingOldest(max(1, bufferSize))
        )
        let token = addObserver { [weak self] event in
            if case .dropped = continuation.yield(event) { self?.recordDropped() }
        }
        continuation.onTermination = { [weak self] _ in self?.removeObserver(token) }
        return stream
    }

    /// Events that a bounded consumer could not take (streams, and subscribers that report drops).
    public var droppedEventCount: Int { dropped.load(ordering: .relaxed) }

    /// Lets a bounded consumer built on ``addObserver(_:)`` (such as an HTTP event stream) count what
    /// it dropped.
    public func recordDropped(_ count: Int = 1) {
        dropped.add(count, ordering: .relaxed)
    }

    /// Consumers (event-stream subscribers) disconnected because they could not keep up.
    public var slowConsumersDisconnectedCount: Int { slowConsumersDisconnected.load(ordering: .relaxed) }

    /// Counts a consumer disconnected because it could not keep up.
    public func recordSlowConsumerDisconnected() {
        slowConsumersDisconnected.add(1, ordering: .relaxed)
    }

    /// Delivers `event` to every observer, on this thread.
    public func publish(_ event: SessionEvent) {
        guard observerCount.load(ordering: .relaxed) > 0 else { return }
        let list = observers.withLock { $0.list }
        for entry in list { entry.observer(event) }
    }

    /// Delivers `events`, in order, to every observer, on this thread.
    public func publish(_ events: [SessionEvent]) {
        guard !events.isEmpty, observerCount.load(ordering: .relaxed) > 0 else { return }
        let list = observers.withLock { $0.list }
        for event in events {
            for entry in list { entry.observer(event) }
        }
    }
}

import Synchronization

/// The event feed of one in-process store: its hub's events, numbered `1, 2, …` as they are
/// delivered. Ids are `<epoch>-<n>`, the epoch random per process, so an id of an earlier run is
/// recognised as unknown.
///
/// ```swift
/// let feed = LocalEventFeed(events: store.events)
/// feed.observe { item in if case .event(let event, let position) = item { print(feed.eventID(of: position), event.kind) } }
/// ```
public final class LocalEventFeed: SessionEventFeed {
    private struct State {
        var sequence: UInt64 = 0
        var observers: [@Sendable (SessionFeedItem) -> Void] = []
    }

    private let state = Mutex(State())
    /// This process's prefix of ids.
    public let epoch: String

    public init(events: SessionEventHub) {
        epoch = String(UInt64.random(in: 1 << 60..<UInt64.max), radix: 16)
        events.addObserver { [weak self] event in self?.deliver(event) }
    }

    public func observe(_ observer: @escaping @Sendable (SessionFeedItem) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    public func eventID(of position: SessionEventPosition) -> String { "\(epoch)-\(position.major)" }

    public func position(ofEventID id: String) -> SessionEventPosition? {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0] == epoch, let sequence = UInt64(parts[1]) else { return nil }
        return SessionEventPosition(major: sequence)
    }

    public var keepsHistoryFromStart: Bool { false }
    public var resumeAheadAllowance: UInt64? { nil }

    /// Numbers and delivers under one lock, so that the numbers follow the order of delivery.
    private func deliver(_ event: SessionEvent) {
        state.withLock { state in
            state.sequence += 1
            let item = SessionFeedItem.event(event, SessionEventPosition(major: state.sequence))
            for observer in state.observers { observer(item) }
        }
    }
}

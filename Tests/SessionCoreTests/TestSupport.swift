import Synchronization

@testable import SessionCore

/// A store on a manual clock, and a recorder of every event it publishes.
struct Harness {
    let clock = ManualSessionClock()
    let store: SessionStore
    let recorder = EventRecorder()

    init(_ configuration: SessionStore.Configuration = .init()) {
        store = SessionStore(configuration: configuration, clock: clock)
        let recorder = self.recorder
        store.events.addObserver { recorder.record($0) }
    }

    func advance(seconds: Double) {
        clock.advance(by: .milliseconds(Int64(seconds * 1000)))
    }
}

final class EventRecorder: Sendable {
    private let events = Mutex<[SessionEvent]>([])

    func record(_ event: SessionEvent) { events.withLock { $0.append(event) } }
    var all: [SessionEvent] { events.withLock { $0 } }
    var endReasons: [SessionEndReason] {
        all.compactMap { if case .ended(let reason) = $0.kind { reason } else { nil } }
    }
    var createdCount: Int { all.filter { $0.kind == .created }.count }
}

extension Array where Element == UInt8 {
    init(json: String) { self = Array(json.utf8) }
}

/// An atomic counter that closures can share.
final class SharedCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

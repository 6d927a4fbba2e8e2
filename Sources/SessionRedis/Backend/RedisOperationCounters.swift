import SessionCore
import Synchronization

/// What this instance's operations did, for the per-instance counters of the metrics: each creation,
/// ending and validation in the whole fleet is counted once, by the instance whose call did it.
final class RedisOperationCounters: Sendable {
    private let created = Atomic<Int>(0)
    private let ended = Mutex<[SessionEndReason: Int]>([:])
    private let valid = Atomic<Int>(0)
    private let unknown = Atomic<Int>(0)
    private let expired = Atomic<Int>(0)
    private let malformed = Atomic<Int>(0)

    func recordCreated() { created.add(1, ordering: .relaxed) }

    func recordEnded(_ events: [SessionEvent]) {
        guard !events.isEmpty else { return }
        ended.withLock { counts in
            for event in events { if case .ended(let reason) = event.kind { counts[reason, default: 0] += 1 } }
        }
    }

    func recordValidation(_ result: SessionValidation) {
        switch result {
        case .valid: valid.add(1, ordering: .relaxed)
        case .unknown: unknown.add(1, ordering: .relaxed)
        case .expired: expired.add(1, ordering: .relaxed)
        case .malformed: malformed.add(1, ordering: .relaxed)
        }
    }

    /// The counts into `statistics`.
    func fill(_ statistics: inout SessionStatistics) {
        statistics.created = created.load(ordering: .relaxed)
        statistics.ended = ended.withLock { $0 }
        statistics.validationsValid = valid.load(ordering: .relaxed)
        statistics.validationsUnknown = unknown.load(ordering: .relaxed)
        statistics.validationsExpired = expired.load(ordering: .relaxed)
        statistics.validationsMalformed = malformed.load(ordering: .relaxed)
    }
}

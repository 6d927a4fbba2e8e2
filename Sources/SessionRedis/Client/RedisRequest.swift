import Synchronization

/// A command waiting for its answer: completed once, by its answer, a failure, or its deadline.
final class RedisRequest: Sendable {
    let deadline: UInt64
    private let completion: RedisClient.Completion
    private let isDone = Atomic<Bool>(false)

    init(deadline: UInt64, completion: @escaping RedisClient.Completion) {
        self.deadline = deadline
        self.completion = completion
    }

    /// Completes with `result` unless completed already; returns whether this call did.
    @discardableResult
    func complete(_ result: Result<RedisValue, RedisClientError>) -> Bool {
        guard !isDone.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        completion(result)
        return true
    }

    var isCompleted: Bool { isDone.load(ordering: .acquiring) }
}

import Synchronization

/// A write sent with ``RedisClient/sendConfirmed(_:completion:)``, answered only once enough replicas
/// hold it.
///
/// Such writes go on a connection of their own, and each write to that socket ends with one `WAIT`
/// (``RedisConnectionSlot``): Redis answers the `WAIT` once the replicas have every write the
/// connection made before it, so one `WAIT` confirms every write of its group. The group's answers
/// are kept until that `WAIT` answers:
///
/// - enough replicas: each write gets its own answer;
/// - fewer replicas in time: each fails with ``RedisClientError/Code/unconfirmed`` (carried out, but
///   it may not survive a failover);
/// - an error reply to the `WAIT` (or not a number): each gets an error reply naming it;
/// - no answer: each fails with that failure.
///
/// An error reply to the write itself (`MOVED`, a script's error) and a failure (no connection, a
/// timeout) are answered at once: nothing was written, or the caller cannot know either way.
final class RedisConfirmedWrite: Sendable {
    private let completion: RedisClient.Completion
    /// The write's own answer, kept until its `WAIT` answers.
    private let answer = Mutex<RedisValue?>(nil)
    private let isDone = Atomic<Bool>(false)

    init(completion: @escaping RedisClient.Completion) {
        self.completion = completion
    }

    /// The write's own answer.
    func answered(_ result: Result<RedisValue, RedisClientError>) {
        switch result {
        case .success(.error), .failure:
            finish(result)
        case .success(let value):
            answer.withLock { $0 = value }
        }
    }

    /// The answer of the `WAIT` that followed this write, which needed `replicas` confirmations.
    func confirmed(by wait: Result<RedisValue, RedisClientError>, replicas: Int) {
        guard let value = answer.withLock({ $0 }) else {
            // No answer of its own (it failed, and is finished): the `WAIT`'s failure, if any.
            if case .failure(let error) = wait { finish(.failure(error)) }
            return
        }
        switch wait {
        case .failure(let error):
            finish(.failure(RedisClientError(code: error.code, message: "\(error.message) (waiting for replicas)")))
        case .success(.error(let message)):
            finish(.success(.error("WAIT: \(message)")))
        case .success(let reply):
            guard let confirmations = reply.integer else { return finish(.success(.error("WAIT: not a number"))) }
            if confirmations >= Int64(replicas) {
                finish(.success(value))
            } else {
                let message = "\(confirmations) of \(replicas) replicas confirmed the write in time"
                finish(.failure(RedisClientError(code: .unconfirmed, message: message)))
            }
        }
    }

    private func finish(_ result: Result<RedisValue, RedisClientError>) {
        guard !isDone.exchange(true, ordering: .acquiringAndReleasing) else { return }
        completion(result)
    }

    /// The request of the `WAIT` written after `group`: its answer settles every write of the group.
    static func waitRequest(for group: [RedisConfirmedWrite], replicas: Int, deadline: UInt64) -> RedisRequest {
        RedisRequest(deadline: deadline) { result in
            for write in group { write.confirmed(by: result, replicas: replicas) }
        }
    }
}

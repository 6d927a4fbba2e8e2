import Synchronization

/// Collects the answers of several commands and hands them over, in order, once all are known.
final class RedisResultCollector: Sendable {
    private let results: Mutex<(answers: [Result<RedisValue, RedisClientError>?], missing: Int)>
    private let completion: @Sendable ([Result<RedisValue, RedisClientError>]) -> Void

    init(count: Int, completion: @escaping @Sendable ([Result<RedisValue, RedisClientError>]) -> Void) {
        results = Mutex((Array(repeating: nil, count: count), count))
        self.completion = completion
    }

    func set(_ index: Int, _ result: Result<RedisValue, RedisClientError>) {
        let done = results.withLock { state -> [Result<RedisValue, RedisClientError>]? in
            state.answers[index] = result
            state.missing -= 1
            return state.missing == 0 ? state.answers.map { $0! } : nil
        }
        if let done { completion(done) }
    }
}

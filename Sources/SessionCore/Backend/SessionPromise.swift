import Dispatch
import Synchronization

/// A result that a ``SessionBackend`` delivers later (``SessionReply/pending(_:)``).
///
/// Completed once, from any thread; later completions are ignored. Callbacks registered before the
/// completion run on the completing thread, those registered after it at once.
///
/// ```swift
/// let promise = SessionPromise<Int>()
/// storage.afterCommit { error in
///     promise.complete(error == nil ? .success(count) : .failure(unavailable))
/// }
/// return .pending(promise)
/// ```
public final class SessionPromise<Value: Sendable>: Sendable {
    private enum State {
        case waiting([@Sendable (Result<Value, SessionError>) -> Void])
        case done(Result<Value, SessionError>)
    }

    private let state = Mutex(State.waiting([]))

    public init() {}

    /// Sets the result and runs the callbacks waiting for it; does nothing if it was set already.
    public func complete(_ result: Result<Value, SessionError>) {
        let callbacks = state.withLock { state -> [@Sendable (Result<Value, SessionError>) -> Void] in
            guard case .waiting(let callbacks) = state else { return [] }
            state = .done(result)
            return callbacks
        }
        for callback in callbacks { callback(result) }
    }

    /// Completes with `value`.
    public func succeed(_ value: Value) { complete(.success(value)) }

    /// Completes with `error`.
    public func fail(_ error: SessionError) { complete(.failure(error)) }

    /// Calls `body` with the result once it is known.
    public func whenComplete(_ body: @escaping @Sendable (Result<Value, SessionError>) -> Void) {
        let result = state.withLock { state -> Result<Value, SessionError>? in
            switch state {
            case .waiting(let callbacks):
                state = .waiting(callbacks + [body])
                return nil
            case .done(let result):
                return result
            }
        }
        if let result { body(result) }
    }

    /// Blocks until the result is known (for tests and tools; never on a thread that serves requests).
    public func wait() -> Result<Value, SessionError> {
        let semaphore = DispatchSemaphore(value: 0)
        let box = Mutex<Result<Value, SessionError>?>(nil)
        whenComplete { result in
            box.withLock { $0 = result }
            semaphore.signal()
        }
        semaphore.wait()
        return box.withLock { $0! }
    }
}

import Synchronization

/// The answer of a ``SessionBackend`` operation: known at once, or later.
///
/// An in-memory backend answers most operations at once (``completed(_:)``); a write that must
/// first reach the disk, or any operation of a backend on the network, answers later through a
/// ``SessionPromise``, without holding the calling thread meanwhile.
///
/// ```swift
/// switch backend.validate(token: presented, refresh: true) {
/// case .completed(let result): send(render(result))
/// case .pending(let promise): promise.whenComplete { result in send(render(result)) }
/// }
/// ```
public enum SessionReply<Value: Sendable>: Sendable {
    /// The result is known.
    case completed(Result<Value, SessionError>)
    /// The result comes later, through the promise.
    case pending(SessionPromise<Value>)

    /// A reply that succeeded with `value`.
    public static func success(_ value: Value) -> SessionReply { .completed(.success(value)) }

    /// A reply that failed with `error`.
    public static func failure(_ error: SessionError) -> SessionReply { .completed(.failure(error)) }

    /// Calls `body` with the result: at once, on this thread, when it is known; otherwise on the
    /// thread that completes the promise.
    public func whenComplete(_ body: @escaping @Sendable (Result<Value, SessionError>) -> Void) {
        switch self {
        case .completed(let result): body(result)
        case .pending(let promise): promise.whenComplete(body)
        }
    }

    /// Waits for the result, blocking the calling thread (for tests and command-line tools; never on
    /// a thread that serves requests).
    public func wait() -> Result<Value, SessionError> {
        switch self {
        case .completed(let result): return result
        case .pending(let promise): return promise.wait()
        }
    }
}

import Dispatch
import Synchronization

/// The deferred requests between their suspension and their completion, so that a shutdown can answer
/// the ones still waiting and wait until every answer has been sent.
final class DeferredRegistry: Sendable {
    private struct State {
        var nextToken: UInt64 = 1
        var responders: [UInt64: HTTPResponder] = [:]
        var isClosing = false
    }

    private let state = Mutex(State())
    /// Entered for every registered request, left when it completes.
    private let pending = DispatchGroup()

    /// Adds a responder (always, so that a shutdown waits for its answer to be sent). `accepted` is
    /// `false` once ``closeAll(answeringWith:)`` has run: the caller must answer it at once.
    func insert(_ responder: HTTPResponder) -> (token: UInt64, accepted: Bool) {
        pending.enter()
        return state.withLock { state in
            let token = state.nextToken
            state.nextToken += 1
            state.responders[token] = responder
            return (token, !state.isClosing)
        }
    }

    /// The request registered under `token` has completed.
    func remove(_ token: UInt64) {
        let removed = state.withLock { $0.responders.removeValue(forKey: token) }
        if removed != nil { pending.leave() }
    }

    /// Waits until every registered request has completed, or `timeout` has passed; returns whether
    /// they all have.
    func waitUntilEmpty(timeout: Duration) -> Bool {
        pending.wait(timeout: .now(advancedBy: timeout)) == .success
    }

    /// Answers every request still waiting with `response` (answered ones keep their answer) and makes
    /// ``insert(_:)`` refuse new ones.
    func closeAll(answeringWith response: HTTPResponse) {
        let responders = state.withLock { state in
            state.isClosing = true
            return Array(state.responders.values)
        }
        for responder in responders {
            responder.respond(response)
        }
    }
}

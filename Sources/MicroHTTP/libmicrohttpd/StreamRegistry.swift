import Synchronization

/// The open streams, by token, so that a hang-up or a shutdown can reach them.
final class StreamRegistry: Sendable {
    private struct State {
        var nextToken: UInt64 = 1
        var writers: [UInt64: HTTPStreamWriter] = [:]
        var isClosing = false
    }

    private let state = Mutex(State())

    func makeToken() -> UInt64 {
        state.withLock { state in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
    }

    /// Adds a writer; returns `false` (and does not add it) once ``closeAll()`` has run.
    func insert(_ writer: HTTPStreamWriter, token: UInt64) -> Bool {
        state.withLock { state in
            guard !state.isClosing else { return false }
            state.writers[token] = writer
            return true
        }
    }

    func remove(_ token: UInt64) {
        _ = state.withLock { $0.writers.removeValue(forKey: token) }
    }

    func hungUp(_ token: UInt64) {
        let writer = state.withLock { $0.writers[token] }
        writer?.clientDisconnected()
    }

    /// Finishes every open stream and refuses new ones.
    func closeAll() {
        let writers = state.withLock { state in
            state.isClosing = true
            return Array(state.writers.values)
        }
        for writer in writers {
            writer.finish()
        }
    }
}

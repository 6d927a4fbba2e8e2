/// Receives every change to a ``SessionStore``'s table, for persistence (see `SessionStorage`).
///
/// ``record(_:)`` is called while the store holds the lock of the session's shard, so the changes
/// of one session arrive in the order they happened. It must be quick and must not block or call
/// the store: append to a queue and return.
///
/// Slides of the idle deadline are coalesced: a `touch` is recorded only when the session's
/// `lastSeenAt` crosses a multiple of ``slideStep(idleTimeout:)``, so after a crash a session can
/// expire up to one step early, never late, and validations cost no disk writes most of the time.
///
/// ```swift
/// final class PrintingJournal: SessionJournal {
///     func record(_ change: SessionChange) { print(change.id) }
/// }
/// store.attachJournal(PrintingJournal())
/// ```
public protocol SessionJournal: Sendable {
    /// Called for each change, under the shard lock.
    func record(_ change: SessionChange)

    /// How far `lastSeenAt` may run ahead of the journal before a `touch` is recorded, in
    /// milliseconds, for a session with this idle timeout (milliseconds). Default: a tenth of it,
    /// at least one second.
    func slideStep(idleTimeout: Int64) -> Int64
}

extension SessionJournal {
    public func slideStep(idleTimeout: Int64) -> Int64 { max(1000, idleTimeout / 10) }
}

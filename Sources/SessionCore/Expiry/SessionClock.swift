import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The wall clock a ``SessionStore`` reads: milliseconds since the Unix epoch.
///
/// Every validity decision reads this clock, so tests inject a ``ManualSessionClock`` and move time
/// instead of sleeping.
public protocol SessionClock: Sendable {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    func nowMilliseconds() -> Int64
}

/// The system's real-time clock (`CLOCK_REALTIME`).
public struct SystemSessionClock: SessionClock {
    public init() {}

    public func nowMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}

/// A clock that only moves when told to; for tests and simulations.
///
/// ```swift
/// let clock = ManualSessionClock()
/// let store = SessionStore(clock: clock)
/// clock.advance(by: .seconds(3001))   // every default session is now idle-expired
/// ```
public final class ManualSessionClock: SessionClock {
    private let now: Atomic<Int64>

    /// Creates a clock standing at `milliseconds` since the epoch (default: 2024-01-01T00:00:00Z).
    public init(milliseconds: Int64 = 1_704_067_200_000) {
        now = Atomic(milliseconds)
    }

    public func nowMilliseconds() -> Int64 { now.load(ordering: .relaxed) }

    /// Moves the clock forward (or backward, with a negative duration).
    public func advance(by duration: Duration) {
        now.add(duration.milliseconds, ordering: .relaxed)
    }

    /// Sets the clock to an absolute time.
    public func set(milliseconds: Int64) {
        now.store(milliseconds, ordering: .relaxed)
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded toward zero.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The duration in whole microseconds, rounded toward zero.
    public var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}

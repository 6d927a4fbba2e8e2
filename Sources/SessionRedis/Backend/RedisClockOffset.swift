import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Redis's clock as this instance estimates it between calls: the local clock plus the offset to
/// Redis's `TIME`, measured at every reaper run (every 250 ms). For the one path that compares a
/// deadline without a function call (a validation that changes nothing); everything that decides
/// uses `TIME` inside a function.
final class RedisClockOffset: Sendable {
    /// Redis's time minus the local time, in milliseconds; `Int64.min` until measured.
    private let offset = Atomic<Int64>(Int64.min)

    /// Records a `TIME` answer (`redisMilliseconds`) read between `sent` and `received` (local
    /// milliseconds): Redis's clock was read near the middle.
    func record(redisMilliseconds: Int64, sent: Int64, received: Int64) {
        offset.store(redisMilliseconds - (sent + received) / 2, ordering: .relaxed)
    }

    /// Redis's time now, in milliseconds since the epoch, or `nil` before the first measurement.
    var now: Int64? {
        let offset = offset.load(ordering: .relaxed)
        guard offset != Int64.min else { return nil }
        return Self.localMilliseconds() + offset
    }

    /// The local wall clock in milliseconds since the epoch.
    static func localMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}

import Dispatch

extension DispatchTime {
    /// The time `duration` from now (a negative duration counts as zero; a huge one is clamped).
    static func now(advancedBy duration: Duration) -> DispatchTime {
        let (seconds, attoseconds) = max(duration, .zero).components
        let nanoseconds = Int(clamping: min(seconds, 1 << 32)) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        return .now() + .nanoseconds(nanoseconds)
    }
}

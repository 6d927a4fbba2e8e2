/// Distinct users seen in the last 1, 5 and 15 minutes, exact to the second.
///
/// A ring of 900 per-second cells counts users by the second they were *last* seen. Seeing a user
/// moves them from their old cell to the current one, so a user is counted once however often they
/// are seen. Reading sums the cells inside the window: O(900), independent of the number of
/// sessions or users.
struct UsersSeenWindow {
    static let span: Int64 = 900
    static let never = Int64.min

    private var counts = [Int32](repeating: 0, count: Int(span))
    private var seconds = [Int64](repeating: never, count: Int(span))

    private static func cell(_ second: Int64) -> Int {
        Int(((second % span) + span) % span)
    }

    /// Records that a user last seen at `previous` is seen at `now`; returns the new last-seen second.
    mutating func see(previous: Int64, now: Int64) -> Int64 {
        // `now` is read before the shard lock, so a concurrent call may already have recorded a later
        // second (or the clock stepped back): never move a user backwards or count them twice.
        guard previous == Self.never || now > previous else { return previous }
        if previous != Self.never, now - previous < Self.span {
            let old = Self.cell(previous)
            if seconds[old] == previous { counts[old] -= 1 }
        }
        let cell = Self.cell(now)
        if seconds[cell] != now {
            seconds[cell] = now
            counts[cell] = 0
        }
        counts[cell] += 1
        return now
    }

    /// Users last seen within `(now - window, now]`, for each of the given windows in seconds.
    func count(now: Int64, windows: [Int64]) -> [Int] {
        var totals = [Int](repeating: 0, count: windows.count)
        for cell in 0..<Int(Self.span) {
            let second = seconds[cell]
            guard second != Self.never, second <= now else { continue }
            let age = now - second
            for (index, window) in windows.enumerated() where age < window {
                totals[index] += Int(counts[cell])
            }
        }
        return totals
    }
}

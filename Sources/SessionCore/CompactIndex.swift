/// An open-addressing hash index from a random 64-bit word to a 32-bit value, 8 bytes per bucket.
///
/// Built for keys that are already uniformly random (the first word of SHA-256(token), a random
/// session id): the bucket is taken from the key's high 32 bits directly, with no hashing, and the
/// key and its value share one 8-byte bucket, so a lookup touches one cache line where a
/// `Dictionary` touches a key array, a value array and runs SipHash.
///
/// Only the high 32 bits of a key are kept: callers verify a hit against the full value they
/// store elsewhere, and ``insert(_:value:)`` refuses a key whose high 32 bits are already present
/// (the caller then draws a new random key), so every stored key is unique.
///
/// Linear probing with backward-shift deletion (no tombstones); grows at 3/4 load.
struct CompactIndex {
    private static let empty = UInt64.max

    private var buckets = [UInt64](repeating: CompactIndex.empty, count: 16)
    private(set) var count = 0

    private var mask: Int { buckets.count - 1 }

    @inline(__always)
    private static func key(_ word: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: word >> 32) }

    @inline(__always)
    private static func pack(_ key: UInt32, _ value: UInt32) -> UInt64 { UInt64(key) << 32 | UInt64(value) }

    /// The value stored for the key with the same high 32 bits as `word`.
    func find(_ word: UInt64) -> UInt32? {
        let key = Self.key(word)
        var index = Int(key) & mask
        while true {
            let bucket = buckets[index]
            if bucket == Self.empty { return nil }
            if UInt32(truncatingIfNeeded: bucket >> 32) == key { return UInt32(truncatingIfNeeded: bucket) }
            index = (index + 1) & mask
        }
    }

    /// Stores `value` for `word`; `false` (and no change) when its high 32 bits are already present.
    /// - Precondition: `value != UInt32.max`.
    mutating func insert(_ word: UInt64, value: UInt32) -> Bool {
        precondition(value != UInt32.max, "reserved value")
        guard find(word) == nil else { return false }
        if (count + 1) * 4 > buckets.count * 3 { grow() }
        place(Self.pack(Self.key(word), value))
        count += 1
        return true
    }

    /// Replaces the value of an existing key; `false` when the key is absent.
    mutating func update(_ word: UInt64, value: UInt32) -> Bool {
        let key = Self.key(word)
        var index = Int(key) & mask
        while buckets[index] != Self.empty {
            if UInt32(truncatingIfNeeded: buckets[index] >> 32) == key {
                buckets[index] = Self.pack(key, value)
                return true
            }
            index = (index + 1) & mask
        }
        return false
    }

    /// Removes `word`'s key when its value is `expected` (or any value when `expected` is nil).
    @discardableResult
    mutating func remove(_ word: UInt64, ifValue expected: UInt32? = nil) -> Bool {
        let key = Self.key(word)
        var hole = Int(key) & mask
        while true {
            let bucket = buckets[hole]
            if bucket == Self.empty { return false }
            if UInt32(truncatingIfNeeded: bucket >> 32) == key { break }
            hole = (hole + 1) & mask
        }
        if let expected, UInt32(truncatingIfNeeded: buckets[hole]) != expected { return false }
        // Backward-shift: pull later members of the probe run into the hole.
        var next = (hole + 1) & mask
        while buckets[next] != Self.empty {
            let home = Int(UInt32(truncatingIfNeeded: buckets[next] >> 32)) & mask
            // Move `next` into `hole` unless its home lies cyclically in (hole, next].
            let distanceToNext = (next - home) & mask
            let distanceToHole = (hole - home) & mask
            if distanceToHole < distanceToNext {
                buckets[hole] = buckets[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        buckets[hole] = Self.empty
        count -= 1
        return true
    }

    /// Every stored (high 32 bits of the key, value) pair; for invariant checks.
    var pairs: [(key: UInt32, value: UInt32)] {
        buckets.lazy.filter { $0 != Self.empty }.map { (UInt32(truncatingIfNeeded: $0 >> 32), UInt32(truncatingIfNeeded: $0)) }
    }

    /// The high 32 bits under which `word` is stored.
    static func storedKey(of word: UInt64) -> UInt32 { key(word) }

    private mutating func place(_ packed: UInt64) {
        var index = Int(UInt32(truncatingIfNeeded: packed >> 32)) & mask
        while buckets[index] != Self.empty { index = (index + 1) & mask }
        buckets[index] = packed
    }

    private mutating func grow() {
        let old = buckets
        buckets = [UInt64](repeating: Self.empty, count: old.count * 2)
        for bucket in old where bucket != Self.empty { place(bucket) }
    }
}

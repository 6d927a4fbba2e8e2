/// An open-addressing hash index from a random 64-bit word to a 32-bit value, 8 bytes per bucket.
///
/// Built for keys that are already uniformly random (the first word of SHA-256(token), a random
/// session id): the bucket is taken from the key's high 32 bits directly, with no hashing, and the
/// key and its value share one 8-byte bucket, so a lookup touches one cache line where a
/// `Dictionary` touches a key array, a value array and runs SipHash.
///
/// Only the high 32 bits of a key are kept: callers verify a hit against the full value they
/// store elsewhere, and ``insert(_:value:)`` refuses a key whose high 32 bits are already present
/// (the caller then draws a new random key), so every key made by this process is unique there.
///
/// Keys that cannot be redrawn (a session restored from storage keeps its id and token) may share
/// their high 32 bits with a key already present (a few in a million restored sessions):
/// ``insertSharingKey(_:value:)`` keeps those by their full 64 bits in a small side table
/// (``spilledValue(for:)``), which is empty, and costs one test, otherwise.
///
/// Linear probing with backward-shift deletion (no tombstones); grows at 3/4 load.
struct CompactIndex {
    private static let empty = UInt64.max

    private var buckets = [UInt64](repeating: CompactIndex.empty, count: 16)
    /// Keys whose high 32 bits were taken when they were added, by their full 64 bits.
    private var spilled: [UInt64: UInt32] = [:]
    /// `spilled.count`, kept here so that lookups test an integer, not the dictionary.
    private var spilledCount = 0
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

    /// The value stored for exactly `word` among the keys that share their high 32 bits with
    /// another (see ``insertSharingKey(_:value:)``).
    @inline(__always)
    func spilledValue(for word: UInt64) -> UInt32? {
        spilledCount == 0 ? nil : spilled[word]
    }

    /// Whether `word` is stored with `value` (in the buckets or among the spilled keys).
    func contains(_ word: UInt64, value: UInt32) -> Bool {
        find(word) == value || spilledValue(for: word) == value
    }

    /// Stores `value` for `word` even when its high 32 bits are already present (then by its full
    /// 64 bits, aside); `false` (and no change) only when `word` itself is already spilled there.
    /// - Precondition: `word` is not stored yet (the caller checks against the full values it keeps:
    ///   the buckets cannot tell).
    mutating func insertSharingKey(_ word: UInt64, value: UInt32) -> Bool {
        if insert(word, value: value) { return true }
        guard spilled[word] == nil else { return false }
        spilled[word] = value
        spilledCount += 1
        count += 1
        return true
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

    /// Removes `word`'s key when its value is `expected`: from the spilled keys if `word` is there in
    /// full, or else from the buckets.
    ///
    /// The spilled keys come first because they match in full, while a bucket matches on the high 32
    /// bits and the value only: a bucket can hold another word with the same key and, for a moment,
    /// the same value (a rotated token is indexed to its session's slot before the old one is
    /// removed), and removing `word` must not remove that one.
    @discardableResult
    mutating func remove(_ word: UInt64, ifValue expected: UInt32) -> Bool {
        if spilledCount > 0, spilled[word] == expected {
            spilled[word] = nil
            spilledCount -= 1
            count -= 1
            return true
        }
        return removeFromBuckets(word, ifValue: expected)
    }

    private mutating func removeFromBuckets(_ word: UInt64, ifValue expected: UInt32) -> Bool {
        let key = Self.key(word)
        var hole = Int(key) & mask
        while true {
            let bucket = buckets[hole]
            if bucket == Self.empty { return false }
            if UInt32(truncatingIfNeeded: bucket >> 32) == key { break }
            hole = (hole + 1) & mask
        }
        if UInt32(truncatingIfNeeded: buckets[hole]) != expected { return false }
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

/// Session entries in fixed-size chunks, addressed by a slot number.
///
/// Chunks never move or grow, so the table costs one entry per slot plus at most one partly used
/// chunk, never the up-to-2× slack of a growing array. Elements are reached through addressors, so
/// reading or changing one field touches only that field: no copy of the entry, no reference
/// counting of its data.
///
/// This file is the only owner of the chunks' memory: every slot below ``count`` is initialised,
/// and `deinit` deinitialises and frees them.
struct SlotStorage: ~Copyable {
    static let chunkShift = 12
    static let chunkSize = 1 << chunkShift
    static let chunkMask = chunkSize - 1

    private var chunks: [UnsafeMutablePointer<SessionEntry>] = []
    private(set) var count = 0

    init() {}

    subscript(slot: Int32) -> SessionEntry {
        unsafeAddress {
            precondition(slot >= 0 && Int(slot) < count, "slot out of range")
            return UnsafePointer(chunks[Int(slot) >> Self.chunkShift] + (Int(slot) & Self.chunkMask))
        }
        unsafeMutableAddress {
            precondition(slot >= 0 && Int(slot) < count, "slot out of range")
            return chunks[Int(slot) >> Self.chunkShift] + (Int(slot) & Self.chunkMask)
        }
    }

    /// Chunks start on a cache line, so that each 128-byte entry spans exactly two lines.
    static let chunkAlignment = 64

    /// Appends a slot holding `entry` and returns its number.
    mutating func append(_ entry: SessionEntry) -> Int32 {
        if count & Self.chunkMask == 0 {
            let chunk = UnsafeMutableRawPointer.allocate(
                byteCount: Self.chunkSize * MemoryLayout<SessionEntry>.stride,
                alignment: max(Self.chunkAlignment, MemoryLayout<SessionEntry>.alignment)
            )
            chunks.append(chunk.bindMemory(to: SessionEntry.self, capacity: Self.chunkSize))
        }
        (chunks[chunks.count - 1] + (count & Self.chunkMask)).initialize(to: entry)
        count += 1
        return Int32(count - 1)
    }

    deinit {
        for (index, chunk) in chunks.enumerated() {
            let used = min(Self.chunkSize, count - index * Self.chunkSize)
            chunk.deinitialize(count: used)
            UnsafeMutableRawPointer(chunk).deallocate()
        }
    }
}

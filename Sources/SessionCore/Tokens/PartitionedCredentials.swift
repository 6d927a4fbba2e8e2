/// Tokens and ids that carry the partition of their session, for a store split into partitions by
/// user (the Redis backend): validation, rotation and revocation by id go straight to the partition,
/// without a global index.
///
/// A token is still `usm_` + base64url(32 bytes), 47 characters: its first two bytes hold the
/// partition (big-endian), the other 30 (240 bits) come from the system CSPRNG. An id's first two
/// bytes hold the partition too; its other 14 are random. A presented token whose partition is not
/// below ``partitionCount`` is malformed, checked after the shape check and before hashing.
///
/// ```swift
/// let credentials = PartitionedCredentials(partitionCount: 128)
/// let (token, hash) = credentials.newToken(partition: 17)
/// credentials.partition(ofPresented: token.rawValue)   // 17
/// ```
public final class PartitionedCredentials: Sendable {
    /// The number of partitions; at most 65,536.
    public let partitionCount: Int
    private let pool = RandomPool()

    public init(partitionCount: Int) {
        precondition((1...65_536).contains(partitionCount), "partitionCount must be in 1...65536")
        self.partitionCount = partitionCount
    }

    /// A fresh token of a session of `partition`, with its hash.
    public func newToken(partition: Int) -> (SessionToken, TokenHash) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(SessionToken.length)
        bytes.append(contentsOf: SessionToken.prefix.utf8)
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { secret in
            pool.fill(secret)
            secret[0] = UInt8(truncatingIfNeeded: partition >> 8)
            secret[1] = UInt8(truncatingIfNeeded: partition)
            Base64URL.encode(UnsafeRawBufferPointer(secret), into: &bytes)
            secret.initializeMemory(as: UInt8.self, repeating: 0)
        }
        let hash = bytes.withUnsafeBytes { TokenHash(sha256Of: $0) }
        return (SessionToken(rawValue: String(decoding: bytes, as: UTF8.self)), hash)
    }

    /// A fresh id of a session of `partition`.
    public func newID(partition: Int) -> SessionID {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { pool.fill($0) }
        bytes[0] = UInt8(truncatingIfNeeded: partition >> 8)
        bytes[1] = UInt8(truncatingIfNeeded: partition)
        return bytes.withUnsafeBytes { SessionID(bytes: $0)! }
    }

    /// The partition of a presented token and its hash; `nil` when the token is malformed (its shape,
    /// or a partition out of range).
    public func partition(ofPresented token: UnsafeBufferPointer<UInt8>) -> (partition: Int, hash: TokenHash)? {
        guard token.count == SessionToken.length else { return nil }
        // The first three base64url characters hold 18 bits: the two partition bytes and 2 more.
        var bits = 0
        for index in 4..<7 {
            let value = Base64URL.decodeTable[Int(token[index])]
            guard value & 0x80 == 0 else { return nil }
            bits = bits << 6 | Int(value)
        }
        let partition = bits >> 2
        guard partition < partitionCount, let hash = TokenHash(presented: token) else { return nil }
        return (partition, hash)
    }

    /// Same as ``partition(ofPresented:)-(UnsafeBufferPointer<UInt8>)`` for a token as text.
    public func partition(ofPresented token: String) -> (partition: Int, hash: TokenHash)? {
        var token = token
        return token.withUTF8 { partition(ofPresented: $0) }
    }

    /// The partition an id names, or `nil` when it is out of range (an id this store never issued).
    public func partition(of id: SessionID) -> Int? {
        let partition = id.withUnsafeBytes { Int($0[0]) << 8 | Int($0[1]) }
        return partition < partitionCount ? partition : nil
    }
}

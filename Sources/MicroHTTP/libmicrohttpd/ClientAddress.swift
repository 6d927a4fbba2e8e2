#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The IP address of a client, as the key of per-client connection counts: 16 bytes, IPv4 addresses
/// in their IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), so that one client counts once whichever way
/// it connects.
struct ClientAddress: Hashable, Sendable {
    private let high: UInt64
    private let low: UInt64

    /// The key of a client whose address is not IPv4 or IPv6 (all such clients share it).
    static let unknown = ClientAddress(high: 0, low: 0)

    private init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The address of `address` (an `AF_INET` or `AF_INET6` socket address of `length` bytes), or
    /// `nil` for another family.
    init?(_ address: UnsafePointer<sockaddr>?, length: Int) {
        guard let address else { return nil }
        switch Int32(address.pointee.sa_family) {
        case AF_INET where length >= MemoryLayout<sockaddr_in>.size:
            let ipv4 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self).sin_addr.s_addr
            high = 0
            low = 0xFFFF_0000_0000 | UInt64(UInt32(bigEndian: ipv4))
        case AF_INET6 where length >= MemoryLayout<sockaddr_in6>.size:
            let ipv6 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self).sin6_addr
            let bytes = withUnsafeBytes(of: ipv6) { Array($0) }
            high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
            low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
        default:
            return nil
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The client of a connection, as the key of per-client connection counts: an IPv4 address, or the
/// /64 prefix of an IPv6 address.
///
/// A host or a home network is routinely given a whole IPv6 /64 and picks its addresses in it
/// freely, so the /64 is what one client is. The exceptions keep the whole address: IPv4-mapped
/// addresses (`::ffff:a.b.c.d`, the same key as the IPv4 address, so that one client counts once
/// whichever way it connects), link-local addresses (`fe80::/10`, whose prefix every host of a link
/// shares) and the addresses of `::/64` (loopback `::1` among them).
struct ClientAddress: Hashable, Sendable {
    private let high: UInt64
    private let low: UInt64

    /// The key of a client whose address is not IPv4 or IPv6 (all such clients share it).
    static let unknown = ClientAddress(high: 0, low: 0)

    private init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The key of the IPv4 address `address` (host byte order).
    init(ipv4 address: UInt32) {
        self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(address))
    }

    /// The key of the IPv6 address whose first and last 8 bytes (network order) are `high` and `low`.
    init(ipv6 high: UInt64, _ low: UInt64) {
        let isLinkLocal = high >> 54 == 0xFE80 >> 6
        self.init(high: high, low: high == 0 || isLinkLocal ? low : 0)
    }

    /// The key of `address` (an `AF_INET` or `AF_INET6` socket address of `length` bytes), or `nil`
    /// for another family.
    init?(_ address: UnsafePointer<sockaddr>?, length: Int) {
        guard let address else { return nil }
        switch Int32(address.pointee.sa_family) {
        case AF_INET where length >= MemoryLayout<sockaddr_in>.size:
            let ipv4 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self).sin_addr.s_addr
            self.init(ipv4: UInt32(bigEndian: ipv4))
        case AF_INET6 where length >= MemoryLayout<sockaddr_in6>.size:
            let ipv6 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self).sin6_addr
            let (high, low) = withUnsafeBytes(of: ipv6) {
                (
                    UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)),
                    UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                )
            }
            self.init(ipv6: high, low)
        default:
            return nil
        }
    }
}

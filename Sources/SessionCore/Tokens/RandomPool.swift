import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes from the operating system's CSPRNG (`getrandom(2)`), fetched 4 KiB at a time.
///
/// One `getrandom` call per token would cost a system call per login; the pool amortises it. Bytes
/// handed out are wiped from the pool, so a memory dump never holds a future or past token.
final class RandomPool: Sendable {
    private static let capacity = 4096

    private struct State: ~Copyable {
        var bytes = [UInt8](repeating: 0, count: RandomPool.capacity)
        var offset = RandomPool.capacity
    }

    private let state = Mutex(State())

    /// Fills `destination` with fresh random bytes.
    func fill(_ destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count <= Self.capacity)
        state.withLock { state in
            if state.offset + destination.count > Self.capacity {
                state.bytes.withUnsafeMutableBytes { Self.systemRandom($0) }
                state.offset = 0
            }
            let offset = state.offset
            state.bytes.withUnsafeMutableBytes { pool in
                let source = UnsafeMutableRawBufferPointer(rebasing: pool[offset..<offset + destination.count])
                destination.copyMemory(from: UnsafeRawBufferPointer(source))
                source.initializeMemory(as: UInt8.self, repeating: 0)
            }
            state.offset += destination.count
        }
    }

    /// Reads `buffer.count` bytes from the kernel CSPRNG (`/dev/urandom`, the same pool as
    /// `getrandom(2)`), retrying on `EINTR` and short reads.
    private static func systemRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        #if canImport(Darwin)
        arc4random_buf(buffer.baseAddress!, buffer.count)
        #else
        let descriptor = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            fatalError("cannot open /dev/urandom (errno \(errno)); refusing to issue tokens without a CSPRNG")
        }
        defer { close(descriptor) }
        var filled = 0
        while filled < buffer.count {
            let result = read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
            if result < 0 {
                if errno == EINTR { continue }
                fatalError("reading /dev/urandom failed (errno \(errno)); refusing to issue tokens without a CSPRNG")
            }
            guard result > 0 else { fatalError("/dev/urandom returned end of file") }
            filled += result
        }
        #endif
    }
}

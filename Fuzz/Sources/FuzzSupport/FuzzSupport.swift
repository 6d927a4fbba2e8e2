import CFuzzDriver

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs libFuzzer on this executable's `LLVMFuzzerTestOneInput` with the process's arguments; the
/// only statement of each target's main.swift.
public func runLibFuzzer() -> Never {
    exit(usm_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv))
}

/// Stops the process (a crash that libFuzzer records, with the input) when an invariant fails.
public func check(
    _ condition: Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition { fatalError("fuzz invariant violated: \(message())", file: file, line: line) }
}

/// Reads the input front to back: small values that steer a target (which case, which column,
/// which value kind), then the rest as bytes. Past the end it yields zeros and empty arrays.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = Array(UnsafeBufferPointer(start: data, count: size))
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { position >= bytes.count }
    public var remainingCount: Int { max(0, bytes.count - position) }

    public mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// A value below `count` (from one byte; `count` ≤ 256).
    public mutating func choose(_ count: Int) -> Int { Int(byte()) % max(1, count) }

    public mutating func uint64() -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(byte()) }
        return value
    }

    /// Up to `maximum` bytes, the count from one byte.
    public mutating func bytes(upTo maximum: Int) -> [UInt8] {
        let count = min(Int(byte()), maximum, remainingCount)
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] {
        guard position < bytes.count else { return [] }
        defer { position = bytes.count }
        return Array(bytes[position...])
    }
}

/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of the key, or of its hash tag (the bytes
/// between the first `{` and the next `}`, when there are any), modulo 16384.
///
/// ```swift
/// RedisHashSlot.of(Array("sd:{7}:cfg".utf8)) == RedisHashSlot.of(Array("7".utf8))   // true
/// ```
enum RedisHashSlot {
    static let count = 16_384

    /// The slot of `key`.
    static func of(_ key: [UInt8]) -> Int {
        var tagged = key[...]
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            tagged = key[(open + 1)..<close]
        }
        return Int(crc16(tagged)) & (count - 1)
    }

    /// The slot a command's keys live in: the first key by the command's shape (`FCALL name n key …`,
    /// `XREAD … STREAMS key …`, otherwise the first argument), or `nil` for a command without keys
    /// (`TIME`, `INFO`, `FUNCTION`, `CONFIG`, `WAIT`, …).
    static func of(command arguments: [[UInt8]]) -> Int? {
        guard let name = arguments.first else { return nil }
        if scripts.contains(where: { isName(name, $0) }) {
            guard arguments.count > 3, arguments[2] != [UInt8(ascii: "0")] else { return nil }
            return of(arguments[3])
        }
        if isName(name, "XREAD") {
            guard let streams = arguments.firstIndex(where: { isName($0, "STREAMS") }), streams + 1 < arguments.count
            else { return nil }
            return of(arguments[streams + 1])
        }
        if keyless.contains(where: { isName(name, $0) }) { return nil }
        return arguments.count > 1 ? of(arguments[1]) : nil
    }

    /// Commands whose keys follow their key count (`FCALL name n key …`).
    private static let scripts: [StaticString] = ["FCALL", "FCALL_RO", "EVAL", "EVALSHA"]
    /// Commands without keys that sessiond sends.
    private static let keyless: [StaticString] = [
        "TIME", "INFO", "FUNCTION", "CONFIG", "WAIT", "PING", "CLUSTER", "ASKING", "MULTI", "EXEC", "DBSIZE",
        "FLUSHALL", "SCRIPT", "COMMAND", "ECHO",
    ]

    /// Whether `bytes` spell `name` (upper-case ASCII) in any case, without making a string.
    static func isName(_ bytes: [UInt8], _ name: StaticString) -> Bool {
        guard bytes.count == name.utf8CodeUnitCount else { return false }
        return name.withUTF8Buffer { expected in
            zip(bytes, expected).allSatisfy { byte, upper in
                byte == upper || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") && byte - 32 == upper)
            }
        }
    }

    private static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}

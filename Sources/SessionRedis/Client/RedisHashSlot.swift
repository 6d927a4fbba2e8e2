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
        guard let name = arguments.first.map({ String(decoding: $0, as: UTF8.self).uppercased() }) else { return nil }
        switch name {
        case "FCALL", "FCALL_RO", "EVAL", "EVALSHA":
            guard arguments.count > 3, arguments[2] != [UInt8(ascii: "0")] else { return nil }
            return of(arguments[3])
        case "XREAD":
            guard
                let streams = arguments.firstIndex(where: {
                    String(decoding: $0, as: UTF8.self).uppercased() == "STREAMS"
                }),
                streams + 1 < arguments.count
            else { return nil }
            return of(arguments[streams + 1])
        case "TIME", "INFO", "FUNCTION", "CONFIG", "WAIT", "PING", "CLUSTER", "ASKING", "MULTI", "EXEC", "DBSIZE",
            "FLUSHALL", "SCRIPT", "COMMAND", "ECHO":
            return nil
        default:
            return arguments.count > 1 ? of(arguments[1]) : nil
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

/// base64url without padding (RFC 4648 §5), for tokens, ids and cursors.
enum Base64URL {
    /// The 64 characters, as constant memory (no array, no lazy global on the encoding path).
    static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    /// Maps an ASCII byte to its 6-bit value, or 0xFF when the byte is not in the alphabet.
    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        alphabet.withUTF8Buffer { alphabet in
            for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        }
        return table
    }()

    /// The number of characters that encode `byteCount` bytes without padding.
    static func encodedLength(_ byteCount: Int) -> Int { (byteCount * 4 + 2) / 3 }

    /// Appends the encoding of `bytes` to `out` (encoded on the stack, appended in one piece).
    static func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: encodedLength(bytes.count)) { buffer in
            encode(bytes, to: buffer)
            out.append(contentsOf: UnsafeBufferPointer(buffer))
        }
    }

    /// Writes the encoding of `bytes` to `output`, which holds exactly ``encodedLength(_:)`` bytes.
    static func encode(_ bytes: UnsafeRawBufferPointer, to output: UnsafeMutableBufferPointer<UInt8>) {
        precondition(output.count == encodedLength(bytes.count), "output has the wrong length")
        alphabet.withUTF8Buffer { alphabet in
            var index = 0
            var position = 0
            let count = bytes.count
            while index + 3 <= count {
                let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                output[position] = alphabet[Int(chunk >> 18 & 63)]
                output[position + 1] = alphabet[Int(chunk >> 12 & 63)]
                output[position + 2] = alphabet[Int(chunk >> 6 & 63)]
                output[position + 3] = alphabet[Int(chunk & 63)]
                index += 3
                position += 4
            }
            let rest = count - index
            if rest == 1 {
                let chunk = UInt32(bytes[index]) << 16
                output[position] = alphabet[Int(chunk >> 18 & 63)]
                output[position + 1] = alphabet[Int(chunk >> 12 & 63)]
            } else if rest == 2 {
                let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
                output[position] = alphabet[Int(chunk >> 18 & 63)]
                output[position + 1] = alphabet[Int(chunk >> 12 & 63)]
                output[position + 2] = alphabet[Int(chunk >> 6 & 63)]
            }
        }
    }

    /// Decodes a canonical unpadded encoding; `nil` for any other input (bad characters, wrong length,
    /// non-zero trailing bits).
    static func decode(_ text: some Collection<UInt8>, expectedBytes: Int) -> [UInt8]? {
        guard text.count == encodedLength(expectedBytes) else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(expectedBytes)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in text {
            let value = decodeTable[Int(byte)]
            guard value != 0xFF else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // Canonical form: the bits left over after the last full byte are zero.
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }
}

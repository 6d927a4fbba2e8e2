/// Checks that bytes are exactly one JSON value (RFC 8259), valid UTF-8, nested at most
/// ``maximumDepth`` levels. Session data is stored as the bytes given, so this is the only gate.
///
/// A hand-written scanner: no allocation, no Foundation, linear time, and bounded recursion depth
/// (an iterative stack), so hostile input cannot exhaust the stack.
public enum JSONValidator {
    /// Deepest nesting of arrays and objects accepted.
    public static let maximumDepth = 64

    /// `true` when `bytes` hold a single JSON value, optionally surrounded by whitespace, nested at
    /// most `maximumDepth` levels.
    public static func isValid(_ bytes: [UInt8], maximumDepth: Int = JSONValidator.maximumDepth) -> Bool {
        // Not generic, so that callers in other modules do not go through unspecialised generic code.
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer, maximumDepth: maximumDepth)
            return scanner.validateDocument()
        }
    }

    /// `true` when `bytes` hold a single JSON value (any collection of bytes; arrays take the overload above).
    public static func isValid(_ bytes: some Collection<UInt8>, maximumDepth: Int = JSONValidator.maximumDepth) -> Bool
    {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            var scanner = Scanner(bytes: buffer, maximumDepth: maximumDepth)
            return scanner.validateDocument()
        }
        if let result { return result }
        let copy = Array(bytes)
        return copy.withUnsafeBufferPointer { buffer in
            var scanner = Scanner(bytes: buffer, maximumDepth: maximumDepth)
            return scanner.validateDocument()
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        let maximumDepth: Int
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
        }

        mutating func validateDocument() -> Bool {
            skipWhitespace()
            guard validateValue() else { return false }
            skipWhitespace()
            return index == bytes.count
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        /// Validates one value; containers are tracked on an explicit stack.
        mutating func validateValue() -> Bool {
            // Each stack entry: true = inside an object, false = inside an array.
            var stack: [Bool] = []
            while true {
                skipWhitespace()
                guard index < bytes.count else { return false }
                // Parse a value start.
                switch bytes[index] {
                case UInt8(ascii: "{"):
                    guard stack.count < maximumDepth else { return false }
                    index += 1
                    skipWhitespace()
                    if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                        index += 1
                    } else {
                        stack.append(true)
                        guard parseKeyColon() else { return false }
                        continue
                    }
                case UInt8(ascii: "["):
                    guard stack.count < maximumDepth else { return false }
                    index += 1
                    skipWhitespace()
                    if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                        index += 1
                    } else {
                        stack.append(false)
                        continue
                    }
                case UInt8(ascii: "\""):
                    guard parseString() else { return false }
                case UInt8(ascii: "t"):
                    guard literal("true") else { return false }
                case UInt8(ascii: "f"):
                    guard literal("false") else { return false }
                case UInt8(ascii: "n"):
                    guard literal("null") else { return false }
                default:
                    guard parseNumber() else { return false }
                }
                // After a complete value: close containers or expect a separator.
                while true {
                    guard let inObject = stack.last else { return true }
                    skipWhitespace()
                    guard index < bytes.count else { return false }
                    let byte = bytes[index]
                    if byte == UInt8(ascii: ",") {
                        index += 1
                        if inObject { guard parseKeyColon() else { return false } }
                        break
                    }
                    if (inObject && byte == UInt8(ascii: "}")) || (!inObject && byte == UInt8(ascii: "]")) {
                        index += 1
                        stack.removeLast()
                        continue
                    }
                    return false
                }
            }
        }

        mutating func parseKeyColon() -> Bool {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), parseString() else { return false }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
            index += 1
            return true
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { return false }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
            index += count
            return true
        }

        mutating func parseString() -> Bool {
            index += 1  // opening quote
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return true
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { return false }
                    switch bytes[index] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        index += 1
                    case UInt8(ascii: "u"):
                        guard bytes.count - index > 4 else { return false }
                        for offset in 1...4 where !bytes[index + offset].isHexDigit { return false }
                        index += 5
                    default:
                        return false
                    }
                case 0..<0x20:
                    return false
                case 0x20..<0x80:
                    index += 1
                default:
                    guard skipUTF8Sequence() else { return false }
                }
            }
            return false
        }

        /// Accepts one well-formed multi-byte UTF-8 sequence (no overlongs, no surrogates, ≤ U+10FFFF).
        mutating func skipUTF8Sequence() -> Bool {
            let lead = bytes[index]
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                upper = 0x9F
            case 0xF0:
                length = 4
                lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                upper = 0x8F
            default: return false
            }
            guard bytes.count - index >= length else { return false }
            let second = bytes[index + 1]
            guard second >= lower, second <= upper else { return false }
            for offset in 2..<length where bytes[index + offset] & 0xC0 != 0x80 { return false }
            index += length
            return true
        }

        mutating func parseNumber() -> Bool {
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { return false }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if bytes[index].isDigit {
                while index < bytes.count, bytes[index].isDigit { index += 1 }
            } else {
                return false
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard index < bytes.count, bytes[index].isDigit else { return false }
                while index < bytes.count, bytes[index].isDigit { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard index < bytes.count, bytes[index].isDigit else { return false }
                while index < bytes.count, bytes[index].isDigit { index += 1 }
            }
            return true
        }
    }
}

extension UInt8 {
    fileprivate var isDigit: Bool { self >= 0x30 && self <= 0x39 }
    fileprivate var isHexDigit: Bool {
        isDigit || (self >= 0x41 && self <= 0x46) || (self >= 0x61 && self <= 0x66)
    }
}

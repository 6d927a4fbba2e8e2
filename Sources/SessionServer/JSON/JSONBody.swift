import SessionCore

/// A request body that must be one JSON object: its members, with each member's raw bytes (so that
/// session data is stored exactly as sent) and a parsed value for typed fields.
///
/// The body is validated first (well-formed, UTF-8, nesting bounded), then scanned; a duplicate key
/// is refused, since two readers of the same document could otherwise disagree on its meaning.
struct JSONBody {
    enum Value: Equatable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)
        case array
        case object
    }

    struct Member {
        var value: Value
        var raw: ArraySlice<UInt8>
    }

    private(set) var members: [String: Member] = [:]

    /// Parses `bytes`, which must be a JSON object nested at most `maximumDepth` levels.
    init(_ bytes: [UInt8], maximumDepth: Int) throws(APIError) {
        guard JSONValidator.isValid(bytes, maximumDepth: maximumDepth) else {
            throw APIError.invalidJSON("the body is not valid JSON (or nests deeper than \(maximumDepth) levels)")
        }
        var scanner = Scanner(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.peek == UInt8(ascii: "{") else { throw APIError.invalidRequest("the body must be a JSON object") }
        scanner.index += 1
        scanner.skipWhitespace()
        if scanner.peek == UInt8(ascii: "}") { return }
        while true {
            scanner.skipWhitespace()
            let key = scanner.string()
            if scanner.loneSurrogate {
                throw APIError.invalidJSON("a string holds an unpaired UTF-16 surrogate escape")
            }
            scanner.skipWhitespace()
            scanner.index += 1  // ':'
            scanner.skipWhitespace()
            let start = scanner.index
            let value = scanner.value()
            if scanner.loneSurrogate {
                throw APIError.invalidJSON("a string holds an unpaired UTF-16 surrogate escape")
            }
            guard members[key] == nil else { throw APIError.invalidJSON("duplicate key \"\(key.prefix(64))\"") }
            members[key] = Member(value: value, raw: bytes[start..<scanner.index])
            scanner.skipWhitespace()
            if scanner.peek == UInt8(ascii: ",") {
                scanner.index += 1
                continue
            }
            return
        }
    }

    /// Refuses members other than `allowed`, naming the first unknown one in sorted order.
    ///
    /// A linear check over a handful of names, without a set or a sorted copy (this runs on every
    /// write request; an empty `filter` result allocates nothing).
    func requireOnly(_ allowed: [String]) throws(APIError) {
        if let unknown = members.keys.filter({ !allowed.contains($0) }).min() {
            throw APIError.unknownField(unknown)
        }
    }

    /// A scanner over already-validated JSON.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        /// Set when a string held `\\uD800`-style escapes that do not form a pair.
        var loneSurrogate = false

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        mutating func value() -> Value {
            switch peek {
            case UInt8(ascii: "{"):
                skipContainer()
                return .object
            case UInt8(ascii: "["):
                skipContainer()
                return .array
            case UInt8(ascii: "\""):
                return .string(string())
            case UInt8(ascii: "t"):
                index += 4
                return .bool(true)
            case UInt8(ascii: "f"):
                index += 5
                return .bool(false)
            case UInt8(ascii: "n"):
                index += 4
                return .null
            default:
                let start = index
                while let byte = peek,
                    byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".")
                        || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") || (byte >= 0x30 && byte <= 0x39)
                {
                    index += 1
                }
                return .number(Double(String(decoding: bytes[start..<index], as: UTF8.self)) ?? .nan)
            }
        }

        /// Skips a balanced object or array (strings may contain brackets).
        mutating func skipContainer() {
            var depth = 0
            repeat {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    _ = string()
                    continue
                }
                if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") { depth += 1 }
                if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") { depth -= 1 }
                index += 1
            } while depth > 0
        }

        /// Reads a string token starting at its opening quote, decoding escapes.
        mutating func string() -> String {
            index += 1
            var out: [UInt8] = []
            while bytes[index] != UInt8(ascii: "\"") {
                let byte = bytes[index]
                guard byte == UInt8(ascii: "\\") else {
                    out.append(byte)
                    index += 1
                    continue
                }
                let escape = bytes[index + 1]
                index += 2
                switch escape {
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = hex4()
                    if scalar >= 0xD800, scalar < 0xDC00, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
                    {
                        index += 2
                        let low = hex4()
                        if low >= 0xDC00, low < 0xE000 {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            loneSurrogate = true
                        }
                    }
                    guard let character = Unicode.Scalar(scalar) else {
                        loneSurrogate = true
                        continue
                    }
                    out.append(contentsOf: String(Character(character)).utf8)
                default: out.append(escape)
                }
            }
            index += 1
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                index += 1
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                default: digit = UInt32(byte - 0x61 + 10)
                }
                value = value << 4 | digit
            }
            return value
        }
    }
}

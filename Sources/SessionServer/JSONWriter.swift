import SessionCore

/// Builds a compact JSON document directly into bytes: no intermediate strings or dictionaries.
///
/// ```swift
/// var writer = JSONWriter()
/// writer.beginObject(); writer.key("deleted"); writer.integer(3); writer.endObject()
/// writer.bytes   // {"deleted":3}
/// ```
///
/// It runs on every answer, so it allocates nothing besides its buffer: the comma state of each
/// nesting level is one bit, numbers are written as digits without a `String`, and strings that
/// need no escaping are copied in one piece.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// Bit `n`: whether the next value or key at nesting level `n` needs a comma before it.
    private var needsComma: UInt64 = 0
    private var depth = 0

    /// Deepest nesting the writer supports (its documents are the API's own, at most 3 deep).
    static let maximumDepth = 63

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    private mutating func separator() {
        let bit: UInt64 = 1 << UInt64(depth)
        if needsComma & bit != 0 { bytes.append(UInt8(ascii: ",")) }
        needsComma |= bit
    }

    private mutating func open(_ bracket: UInt8) {
        separator()
        bytes.append(bracket)
        precondition(depth < Self.maximumDepth, "JSONWriter nesting too deep")
        depth += 1
        needsComma &= ~(1 << UInt64(depth))
    }

    private mutating func close(_ bracket: UInt8) {
        precondition(depth > 0, "JSONWriter: close without open")
        depth -= 1
        bytes.append(bracket)
    }

    mutating func beginObject() { open(UInt8(ascii: "{")) }
    mutating func endObject() { close(UInt8(ascii: "}")) }
    mutating func beginArray() { open(UInt8(ascii: "[")) }
    mutating func endArray() { close(UInt8(ascii: "]")) }

    /// An object key; the next call writes its value.
    mutating func key(_ name: StaticString) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma &= ~(1 << UInt64(depth))
    }

    mutating func string(_ value: String) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { appendEscaped($0) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Copies runs that need no escaping in one piece; escapes `"`, `\`, control characters and DEL.
    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        for index in utf8.indices {
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F else { continue }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
            bytes.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            default:
                let hex: StaticString = "0123456789abcdef"
                hex.withUTF8Buffer { digits in
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    bytes.append(digits[Int(byte >> 4)])
                    bytes.append(digits[Int(byte & 0xF)])
                }
            }
            runStart = index + 1
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
    }

    mutating func integer(_ value: Int) {
        separator()
        appendDecimal(value)
    }

    private mutating func appendDecimal(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        appendDigits(value.magnitude, minimumCount: 1)
    }

    /// The decimal digits of `value`, left-padded with zeros to `minimumCount`.
    private mutating func appendDigits(_ value: UInt, minimumCount: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var rest = value
            var start = 20
            repeat {
                start -= 1
                buffer[start] = UInt8(truncatingIfNeeded: 48 + rest % 10)
                rest /= 10
            } while rest > 0 || 20 - start < minimumCount
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<20]))
        }
    }

    /// A duration in seconds: an integer when whole, else with millisecond decimals (`2.5`).
    mutating func seconds(_ duration: Duration) {
        separator()
        let milliseconds = duration.milliseconds
        if milliseconds < 0 { bytes.append(UInt8(ascii: "-")) }
        let magnitude = UInt(milliseconds.magnitude)
        appendDigits(magnitude / 1000, minimumCount: 1)
        var fraction = magnitude % 1000
        if fraction != 0 {
            var digits = 3
            while fraction % 10 == 0 {
                fraction /= 10
                digits -= 1
            }
            bytes.append(UInt8(ascii: "."))
            appendDigits(fraction, minimumCount: digits)
        }
    }

    mutating func bool(_ value: Bool) {
        separator()
        let text: StaticString = value ? "true" : "false"
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func null() {
        separator()
        let text: StaticString = "null"
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func timestamp(_ value: SessionTimestamp) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        value.writeRFC3339(into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// A session id as a JSON string (its text form needs no escaping).
    mutating func id(_ value: SessionID) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        value.writeText(into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Bytes that are already one valid JSON value (validated session data).
    mutating func raw(_ json: [UInt8]) {
        separator()
        bytes.append(contentsOf: json)
    }
}

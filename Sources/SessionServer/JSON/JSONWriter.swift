import SessionCore

/// Builds a compact JSON document directly into bytes: no intermediate strings or dictionaries.
///
/// ```swift
/// var writer = JSONWriter()
/// writer.beginObject(); writer.key("deleted"); writer.integer(3); writer.endObject()
/// writer.bytes   // {"deleted":3}
/// ```
///
/// It runs on every answer, so it allocates nothing besides its buffer, and each call (a key with
/// its quotes and comma, a whole string, a timestamp) is one write through a pointer into that
/// buffer rather than a byte-by-byte `append`: the comma state of each nesting level is one bit,
/// numbers are written as digits without a `String`, and strings are measured, then copied with
/// their escapes in one pass.
struct JSONWriter {
    /// The buffer: `count` bytes written, then zeros up to its end (the spare capacity).
    private var storage: [UInt8]
    /// Bytes written so far.
    private var count = 0
    /// Bit `n`: whether the next value or key at nesting level `n` needs a comma before it.
    private var needsComma: UInt64 = 0
    private var depth = 0

    /// Deepest nesting the writer supports (its documents are the API's own, at most 3 deep).
    static let maximumDepth = 63

    init(capacity: Int = 256) { storage = [UInt8](repeating: 0, count: max(capacity, 16)) }

    /// The document so far. Writing may continue afterwards.
    var bytes: [UInt8] {
        mutating get {
            storage.removeLast(storage.count - count)
            return storage
        }
    }

    /// Writes `length` bytes with `body`, after a comma if the current level needs one
    /// (`separated`). `body` gets a pointer to where its bytes go and must write exactly `length`.
    private mutating func write(
        _ length: Int,
        separated: Bool,
        _ body: (UnsafeMutablePointer<UInt8>) -> Void
    ) {
        var comma = 0
        if separated {
            let bit: UInt64 = 1 << UInt64(depth)
            if needsComma & bit != 0 { comma = 1 }
            needsComma |= bit
        }
        let end = count + comma + length
        if end > storage.count {
            storage.append(contentsOf: repeatElement(0, count: max(end, 2 * storage.count) - storage.count))
        }
        let start = count
        storage.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress! + start
            if comma == 1 { base.pointee = UInt8(ascii: ",") }
            body(base + comma)
        }
        count = end
    }

    /// One byte, after a comma when `separated`.
    private mutating func write(_ byte: UInt8, separated: Bool) {
        write(1, separated: separated) { $0.pointee = byte }
    }

    private mutating func open(_ bracket: UInt8) {
        write(bracket, separated: true)
        precondition(depth < Self.maximumDepth, "JSONWriter nesting too deep")
        depth += 1
        needsComma &= ~(1 << UInt64(depth))
    }

    private mutating func close(_ bracket: UInt8) {
        precondition(depth > 0, "JSONWriter: close without open")
        depth -= 1
        write(bracket, separated: false)
    }

    mutating func beginObject() { open(UInt8(ascii: "{")) }
    mutating func endObject() { close(UInt8(ascii: "}")) }
    mutating func beginArray() { open(UInt8(ascii: "[")) }
    mutating func endArray() { close(UInt8(ascii: "]")) }

    /// An object key; the next call writes its value.
    mutating func key(_ name: StaticString) {
        name.withUTF8Buffer { name in
            write(name.count + 3, separated: true) { out in
                out.pointee = UInt8(ascii: "\"")
                (out + 1).initialize(from: name.baseAddress!, count: name.count)
                (out + 1 + name.count).pointee = UInt8(ascii: "\"")
                (out + 2 + name.count).pointee = UInt8(ascii: ":")
            }
        }
        needsComma &= ~(1 << UInt64(depth))
    }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            let length = Self.escapedLength(utf8)
            write(length + 2, separated: true) { out in
                out.pointee = UInt8(ascii: "\"")
                if length == utf8.count {
                    if let base = utf8.baseAddress { (out + 1).initialize(from: base, count: utf8.count) }
                } else {
                    Self.writeEscaped(utf8, to: out + 1)
                }
                (out + 1 + length).pointee = UInt8(ascii: "\"")
            }
        }
    }

    /// Whether `byte` must be escaped in a JSON string: `"`, `\`, control characters and DEL.
    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F
    }

    /// The length of `utf8` once escaped.
    private static func escapedLength(_ utf8: UnsafeBufferPointer<UInt8>) -> Int {
        var length = utf8.count
        for byte in utf8 where needsEscape(byte) {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x0A, 0x0D, 0x09: length += 1
            default: length += 5
            }
        }
        return length
    }

    /// Writes `utf8` escaped (exactly ``escapedLength(_:)`` bytes), copying runs that need no
    /// escaping in one piece.
    private static func writeEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to out: UnsafeMutablePointer<UInt8>) {
        var out = out
        var runStart = 0
        func put(_ byte: UInt8) {
            out.pointee = byte
            out += 1
        }
        for index in utf8.indices {
            let byte = utf8[index]
            guard needsEscape(byte) else { continue }
            out.initialize(from: utf8.baseAddress! + runStart, count: index - runStart)
            out += index - runStart
            put(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): put(byte)
            case 0x0A: put(UInt8(ascii: "n"))
            case 0x0D: put(UInt8(ascii: "r"))
            case 0x09: put(UInt8(ascii: "t"))
            default:
                let hex: StaticString = "0123456789abcdef"
                hex.withUTF8Buffer { digits in
                    put(UInt8(ascii: "u"))
                    put(UInt8(ascii: "0"))
                    put(UInt8(ascii: "0"))
                    put(digits[Int(byte >> 4)])
                    put(digits[Int(byte & 0xF)])
                }
            }
            runStart = index + 1
        }
        out.initialize(from: utf8.baseAddress! + runStart, count: utf8.count - runStart)
    }

    mutating func integer(_ value: Int) {
        digits(value.magnitude, minimumCount: 1, negative: value < 0, separated: true)
    }

    /// The decimal digits of `value` (after a `-` when `negative`), left-padded with zeros to
    /// `minimumCount`.
    private mutating func digits(_ value: UInt, minimumCount: Int, negative: Bool = false, separated: Bool) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { buffer in
            var rest = value
            var start = 21
            repeat {
                start -= 1
                buffer[start] = UInt8(truncatingIfNeeded: 48 + rest % 10)
                rest /= 10
            } while rest > 0 || 21 - start < minimumCount
            if negative {
                start -= 1
                buffer[start] = UInt8(ascii: "-")
            }
            let digits = UnsafeBufferPointer(rebasing: buffer[start..<21])
            write(digits.count, separated: separated) { $0.initialize(from: digits.baseAddress!, count: digits.count) }
        }
    }

    /// A duration in seconds: an integer when whole, else with millisecond decimals (`2.5`).
    mutating func seconds(_ duration: Duration) {
        let milliseconds = duration.milliseconds
        let magnitude = UInt(milliseconds.magnitude)
        digits(magnitude / 1000, minimumCount: 1, negative: milliseconds < 0, separated: true)
        var fraction = magnitude % 1000
        if fraction != 0 {
            var count = 3
            while fraction % 10 == 0 {
                fraction /= 10
                count -= 1
            }
            write(UInt8(ascii: "."), separated: false)
            digits(fraction, minimumCount: count, separated: false)
        }
    }

    mutating func bool(_ value: Bool) {
        literal(value ? "true" : "false")
    }

    mutating func null() {
        literal("null")
    }

    private mutating func literal(_ text: StaticString) {
        text.withUTF8Buffer { text in
            write(text.count, separated: true) { $0.initialize(from: text.baseAddress!, count: text.count) }
        }
    }

    mutating func timestamp(_ value: SessionTimestamp) {
        write(SessionTimestamp.rfc3339Length + 2, separated: true) { out in
            out.pointee = UInt8(ascii: "\"")
            value.writeRFC3339(to: UnsafeMutableBufferPointer(start: out + 1, count: SessionTimestamp.rfc3339Length))
            (out + 1 + SessionTimestamp.rfc3339Length).pointee = UInt8(ascii: "\"")
        }
    }

    /// A session id as a JSON string (its text form needs no escaping).
    mutating func id(_ value: SessionID) {
        write(SessionID.textLength + 2, separated: true) { out in
            out.pointee = UInt8(ascii: "\"")
            value.writeText(to: UnsafeMutableBufferPointer(start: out + 1, count: SessionID.textLength))
            (out + 1 + SessionID.textLength).pointee = UInt8(ascii: "\"")
        }
    }

    /// Bytes that are already one valid JSON value (validated session data).
    mutating func raw(_ json: [UInt8]) {
        json.withUnsafeBufferPointer { json in
            write(json.count, separated: true) { out in
                if let base = json.baseAddress { out.initialize(from: base, count: json.count) }
            }
        }
    }
}

// Fuzz target: SessionCore's `JSONValidator` (the only gate of session data), SessionServer's
// `JSONBody` (every request body) with `JSONWriter` (every answer), and the `Content-Type` check that
// lets a body through (`SessionAPI.isJSONMediaType`).
//
// Invariants:
// - JSONValidator agrees with a reference validator written here from RFC 8259 (recursive descent,
//   strict UTF-8 via the standard library), at depth 64 and at a small depth; its array, slice and
//   non-contiguous entry points agree; a valid document stays valid with whitespace around it.
// - JSONBody accepts only what the validator accepts at its depth and only an object; when it refuses
//   a valid object, it is for a duplicate key or an unpaired surrogate escape (invalid_json).
// - Each member's raw bytes are one valid JSON value whose kind is the member's value kind.
// - Re-serialised (keys and string values written by JSONWriter, other values as their raw bytes), the
//   body parses again to the same members; a string written by JSONWriter is valid JSON.
// - isJSONMediaType is true exactly for optional SP/HTAB, "application/json" in any ASCII case, then
//   the end, ';', SP or HTAB.
//
// Input: the body. Its first bytes are also tried as a Content-Type value.

import FuzzSupport
import SessionCore

@testable import SessionServer

// MARK: Reference validator (RFC 8259)

private struct ReferenceValidator {
    let bytes: [UInt8]
    let maximumDepth: Int
    var index = 0

    static func isValid(_ bytes: [UInt8], maximumDepth: Int) -> Bool {
        // Outside strings a document is ASCII, so strict UTF-8 of the whole is strict UTF-8 of its strings.
        guard String(validating: bytes, as: UTF8.self) != nil else { return false }
        var validator = ReferenceValidator(bytes: bytes, maximumDepth: maximumDepth)
        validator.whitespace()
        guard validator.value(depth: 0) else { return false }
        validator.whitespace()
        return validator.index == bytes.count
    }

    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func whitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    mutating func expect(_ byte: UInt8) -> Bool {
        guard current == byte else { return false }
        index += 1
        return true
    }

    /// A value at `depth` enclosing containers.
    mutating func value(depth: Int) -> Bool {
        switch current {
        case UInt8(ascii: "{"):
            guard depth < maximumDepth else { return false }
            index += 1
            whitespace()
            if expect(UInt8(ascii: "}")) { return true }
            repeat {
                whitespace()
                guard current == UInt8(ascii: "\""), string() else { return false }
                whitespace()
                guard expect(UInt8(ascii: ":")) else { return false }
                whitespace()
                guard value(depth: depth + 1) else { return false }
                whitespace()
            } while expect(UInt8(ascii: ","))
            return expect(UInt8(ascii: "}"))
        case UInt8(ascii: "["):
            guard depth < maximumDepth else { return false }
            index += 1
            whitespace()
            if expect(UInt8(ascii: "]")) { return true }
            repeat {
                whitespace()
                guard value(depth: depth + 1) else { return false }
                whitespace()
            } while expect(UInt8(ascii: ","))
            return expect(UInt8(ascii: "]"))
        case UInt8(ascii: "\""):
            return string()
        case UInt8(ascii: "t"):
            return literal("true")
        case UInt8(ascii: "f"):
            return literal("false")
        case UInt8(ascii: "n"):
            return literal("null")
        default:
            return number()
        }
    }

    mutating func literal(_ word: String) -> Bool {
        for byte in word.utf8 { guard expect(byte) else { return false } }
        return true
    }

    mutating func string() -> Bool {
        guard expect(UInt8(ascii: "\"")) else { return false }
        while let byte = current {
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return true
            case UInt8(ascii: "\\"):
                guard let escape = current else { return false }
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    for _ in 0..<4 {
                        guard let digit = current, isHexDigit(digit) else { return false }
                        index += 1
                    }
                default:
                    return false
                }
            case 0..<0x20:
                return false
            default:
                continue
            }
        }
        return false
    }

    mutating func digits() -> Int {
        let start = index
        while let byte = current, byte >= 0x30, byte <= 0x39 { index += 1 }
        return index - start
    }

    mutating func number() -> Bool {
        _ = expect(UInt8(ascii: "-"))
        if expect(UInt8(ascii: "0")) {
            // no further integer digits
        } else if let byte = current, byte >= 0x31, byte <= 0x39 {
            _ = digits()
        } else {
            return false
        }
        if expect(UInt8(ascii: ".")) { guard digits() > 0 else { return false } }
        if expect(UInt8(ascii: "e")) || expect(UInt8(ascii: "E")) {
            _ = expect(UInt8(ascii: "+")) || expect(UInt8(ascii: "-"))
            guard digits() > 0 else { return false }
        }
        return true
    }

    func isHexDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
    }
}

// MARK: Checks

private func checkValidator(_ bytes: [UInt8]) -> Bool {
    let valid = JSONValidator.isValid(bytes)
    let reference = ReferenceValidator.isValid(bytes, maximumDepth: JSONValidator.maximumDepth)
    check(valid == reference, "JSONValidator says \(valid), the RFC 8259 reference \(reference)")
    let shallow = JSONValidator.isValid(bytes, maximumDepth: 3)
    check(shallow == ReferenceValidator.isValid(bytes, maximumDepth: 3), "JSONValidator at depth 3")
    check(!shallow || valid, "valid at depth 3 but not at 64")
    check(JSONValidator.isValid(bytes[...]) == valid, "the slice entry point disagrees")
    check(JSONValidator.isValid(bytes.lazy.map { $0 }) == valid, "the non-contiguous entry point disagrees")
    if valid {
        check(JSONValidator.isValid(Array(" \r\n\t".utf8) + bytes + Array("\n ".utf8)), "whitespace around")
        check(
            JSONValidator.isValid([UInt8(ascii: "[")] + bytes + [UInt8(ascii: "]")], maximumDepth: 65),
            "a valid value in an array one level deeper"
        )
    }
    return valid
}

/// A string as JSONWriter writes it (with its quotes).
private func written(_ text: String) -> [UInt8] {
    var writer = JSONWriter()
    writer.beginArray()
    writer.string(text)
    writer.endArray()
    let bytes = writer.bytes
    return Array(bytes[1..<(bytes.count - 1)])
}

private func kindMatches(_ value: JSONBody.Value, _ raw: ArraySlice<UInt8>) -> Bool {
    switch (value, raw.first) {
    case (.null, UInt8(ascii: "n")), (.bool(true), UInt8(ascii: "t")), (.bool(false), UInt8(ascii: "f")),
        (.string, UInt8(ascii: "\"")), (.array, UInt8(ascii: "[")), (.object, UInt8(ascii: "{")):
        return true
    case (.number, let first?):
        return first == UInt8(ascii: "-") || (first >= 0x30 && first <= 0x39)
    default:
        return false
    }
}

private func sameValue(_ a: JSONBody.Value, _ b: JSONBody.Value) -> Bool {
    if case .number(let x) = a, case .number(let y) = b { return x == y || (x.isNaN && y.isNaN) }
    return a == b
}

private func checkBody(_ bytes: [UInt8], isValid: Bool) {
    let depth = SessionAPI.maximumBodyDepth
    let body: JSONBody
    do {
        body = try JSONBody(bytes, maximumDepth: depth)
    } catch {
        let validAtDepth = isValid || JSONValidator.isValid(bytes, maximumDepth: depth)
        let firstByte = bytes.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        if validAtDepth && firstByte == UInt8(ascii: "{") {
            check(
                error.code == "invalid_json"
                    && (error.message.hasPrefix("duplicate key") || error.message.contains("surrogate")),
                "a valid object refused: \(error.code) \(error.message)"
            )
        }
        return
    }
    check(JSONValidator.isValid(bytes, maximumDepth: depth), "JSONBody accepted what the validator refuses")
    check(
        bytes.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) } == UInt8(ascii: "{"),
        "JSONBody accepted a non-object"
    )

    // Re-serialised with JSONWriter's keys and strings, the body must parse to the same members.
    var again = [UInt8(ascii: "{")]
    for (index, (key, member)) in body.members.sorted(by: { $0.key < $1.key }).enumerated() {
        check(
            JSONValidator.isValid(member.raw, maximumDepth: depth),
            "member \(key.debugDescription): raw not one value"
        )
        check(kindMatches(member.value, member.raw), "member \(key.debugDescription): kind differs from raw")
        let writtenKey = written(key)
        check(JSONValidator.isValid(writtenKey), "JSONWriter wrote an invalid string for \(key.debugDescription)")
        if index > 0 { again.append(UInt8(ascii: ",")) }
        again += writtenKey
        again.append(UInt8(ascii: ":"))
        if case .string(let text) = member.value {
            again += written(text)
        } else {
            again += member.raw
        }
    }
    again.append(UInt8(ascii: "}"))
    let reparsed: JSONBody
    do {
        reparsed = try JSONBody(again, maximumDepth: depth)
    } catch {
        return check(false, "the re-serialised body is refused: \(error.message)")
    }
    check(reparsed.members.count == body.members.count, "member count changed on re-parsing")
    for (key, member) in body.members {
        guard let other = reparsed.members[key] else { return check(false, "key \(key.debugDescription) lost") }
        check(sameValue(member.value, other.value), "value of \(key.debugDescription) changed on re-parsing")
        if case .string = member.value {
            // The raw form may differ (escapes written differently); the decoded value may not.
        } else {
            check(member.raw.elementsEqual(other.raw), "raw bytes of \(key.debugDescription) changed")
        }
    }
}

private func referenceIsJSONMediaType(_ bytes: [UInt8]) -> Bool {
    var rest = bytes[...]
    while let first = rest.first, first == 0x20 || first == 0x09 { rest = rest.dropFirst() }
    let expected = Array("application/json".utf8)
    guard rest.count >= expected.count else { return false }
    for (byte, wanted) in zip(rest, expected) {
        let folded = byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte
        if folded != wanted { return false }
    }
    guard let next = rest.dropFirst(expected.count).first else { return true }
    return next == UInt8(ascii: ";") || next == 0x20 || next == 0x09
}

private func checkMediaType(_ bytes: [UInt8]) {
    // Header values come as bytes; only valid UTF-8 can be a String without repair.
    guard let value = String(validating: bytes, as: UTF8.self) else { return }
    let answer = SessionAPI.isJSONMediaType(value)
    let expected = referenceIsJSONMediaType(bytes)
    check(answer == expected, "isJSONMediaType(\(value.debugDescription)) is \(answer), expected \(expected)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let valid = checkValidator(bytes)
    checkBody(bytes, isValid: valid)
    checkMediaType(Array(bytes.prefix(64)))
    return 0
}

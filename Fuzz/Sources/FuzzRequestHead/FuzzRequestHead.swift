// Fuzz target: MicroHTTP's checks on a request head, on a request line laid out in memory the way
// libmicrohttpd 0.9.75 leaves it (method, spaces, target, version, each ended by the NUL written over
// its separator), then changed the way libmicrohttpd changes it (query split off, path decoded in
// place by the server's own unescape callback):
//
// - `RequestLine.dropQuery(of:above:)` (the query-argument limit, on the raw target),
// - `MHDCallbacks.unescape` (the percent-decoder: `%00` becomes 0xFF),
// - `RequestLine.targetHasNUL(url:version:rawLength:)` and `RequestLine.methodHasNUL(method:url:)`,
// - `AcceptEncoding.allowsGzip(_:)` (a header value), on the input as text.
//
// Invariants, each against a reference written here from the documentation:
// - dropQuery empties the query (ends the target right after its `?`) exactly when it has more than
//   `limit` `&`-separated arguments, and changes nothing else.
// - The decoder turns `%XY` (two hex digits) into that byte, `%00` into 0xFF, keeps everything else,
//   returns the decoded length and ends the result with a NUL: the decoded path never holds a NUL,
//   and a path with `%00` is never valid UTF-8 afterwards.
// - targetHasNUL is true exactly when the raw target held a NUL byte (and the version is not empty);
//   methodHasNUL exactly when the method did.
// - allowsGzip never crashes; on ASCII values, adding `, gzip` allows gzip, adding `, identity` or
//   leading whitespace (before anything but `;`) changes nothing.
//
// Input: the first byte picks the query-argument limit, the rest is the request line (without CRLF).

import FuzzSupport

@testable import MicroHTTP

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let space = UInt8(ascii: " ")

/// The parts of a request line: the method up to the first space, the spaces after it, the target
/// up to the last space, and the version after it ("HTTP/1.1" when there is no second space).
private struct RequestLineParts {
    var method: [UInt8]
    var spaces: Int
    var target: [UInt8]
    var version: [UInt8]

    init(_ line: [UInt8]) {
        guard let firstSpace = line.firstIndex(of: space) else {
            method = line
            spaces = 1
            target = Array("/".utf8)
            version = Array("HTTP/1.1".utf8)
            return
        }
        method = Array(line[..<firstSpace])
        var index = firstSpace
        while index < line.count, line[index] == space { index += 1 }
        spaces = index - firstSpace
        let rest = line[index...]
        if let lastSpace = rest.lastIndex(of: space) {
            target = Array(rest[..<lastSpace])
            version = Array(rest[(lastSpace + 1)...])
        } else {
            target = Array(rest)
            version = Array("HTTP/1.1".utf8)
        }
    }
}

/// The C string at the start of `bytes` (up to the first NUL).
private func cString(_ bytes: some Collection<UInt8>) -> [UInt8] {
    Array(bytes.prefix { $0 != 0 })
}

/// Reference of dropQuery: the target after the call, and whether the query was dropped.
private func referenceDropQuery(_ target: [UInt8], limit: Int) -> ([UInt8], Bool) {
    let text = cString(target)
    guard let question = text.firstIndex(of: UInt8(ascii: "?")), question + 1 < text.count else {
        return (text, false)
    }
    let arguments = 1 + text[(question + 1)...].filter { $0 == UInt8(ascii: "&") }.count
    guard arguments > limit else { return (text, false) }
    return (Array(text[...question]), true)
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// Reference percent-decoding of a C string's bytes, as documented on `MHDCallbacks.unescape`.
private func referenceDecode(_ text: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var index = 0
    while index < text.count {
        if text[index] == UInt8(ascii: "%"), index + 2 < text.count,
            let high = hexValue(text[index + 1]), let low = hexValue(text[index + 2])
        {
            let decoded = high << 4 | low
            out.append(decoded == 0 ? 0xFF : decoded)
            index += 3
        } else {
            out.append(text[index])
            index += 1
        }
    }
    return out
}

private func checkRequestLine(_ line: [UInt8], limit: Int) {
    let parts = RequestLineParts(line)
    // method NUL spaces-1 target NUL version NUL, in one heap block of exactly that size, so that
    // AddressSanitizer reports any read past the line.
    let layout: [UInt8] =
        parts.method + [0] + Array(repeating: space, count: parts.spaces - 1) + parts.target + [0] + parts.version + [0]
    let base = UnsafeMutablePointer<CChar>.allocate(capacity: layout.count)
    defer { base.deallocate() }
    layout.withUnsafeBytes { UnsafeMutableRawPointer(base).copyMemory(from: $0.baseAddress!, byteCount: layout.count) }
    let url = base + parts.method.count + parts.spaces
    let version = url + parts.target.count + 1
    // The URI-log callback's view: the target as a C string, before anything else changed it.
    let rawLength = strlen(url)

    // 1. The query-argument limit, on the raw target (what the URI-log callback does).
    let (expectedTarget, expectedDrop) = referenceDropQuery(parts.target, limit: limit)
    let dropped = RequestLine.dropQuery(of: url, above: limit)
    check(dropped == expectedDrop, "dropQuery returned \(dropped), expected \(expectedDrop) (limit \(limit))")
    let targetAfter = UnsafeBufferPointer(
        start: UnsafeRawPointer(url).assumingMemoryBound(to: UInt8.self),
        count: strlen(url)
    )
    check(Array(targetAfter) == expectedTarget, "dropQuery left another target than expected")
    check(version.pointee == CChar(bitPattern: parts.version.first ?? 0), "dropQuery wrote past the target")

    // 2. libmicrohttpd splits the query off at the first '?' and decodes the path in place.
    if let question = strchr(url, Int32(UInt8(ascii: "?"))) { question.pointee = 0 }
    let path = Array(
        UnsafeBufferPointer(start: UnsafeRawPointer(url).assumingMemoryBound(to: UInt8.self), count: strlen(url))
    )
    let decodedLength = MHDCallbacks.unescape(nil, nil, url)
    let expectedPath = referenceDecode(path)
    check(decodedLength == expectedPath.count, "unescape returned \(decodedLength), expected \(expectedPath.count)")
    check(strlen(url) == decodedLength, "the decoded path holds a NUL or is not ended by one")
    let decoded = Array(
        UnsafeBufferPointer(start: UnsafeRawPointer(url).assumingMemoryBound(to: UInt8.self), count: decodedLength)
    )
    check(decoded == expectedPath, "unescape decoded differently from the reference")
    if String(validatingCString: url) != nil {
        check(!path.windowsContainsPercentZeroZero, "a path with %00 decoded to valid UTF-8")
    }

    // 3. The NUL checks of the access handler.
    let targetHasNUL = RequestLine.targetHasNUL(url: url, version: version, rawLength: rawLength)
    let expectedTargetNUL = parts.target.contains(0) && (parts.version.first ?? 0) != 0
    check(targetHasNUL == expectedTargetNUL, "targetHasNUL \(targetHasNUL), expected \(expectedTargetNUL)")
    check(
        !RequestLine.targetHasNUL(url: url, version: version, rawLength: nil),
        "targetHasNUL without a raw length"
    )
    let methodHasNUL = RequestLine.methodHasNUL(method: base, url: url)
    check(methodHasNUL == parts.method.contains(0), "methodHasNUL \(methodHasNUL) for \(parts.method)")
}

extension [UInt8] {
    fileprivate var windowsContainsPercentZeroZero: Bool {
        guard count >= 3 else { return false }
        return (0...(count - 3)).contains {
            self[$0] == UInt8(ascii: "%") && self[$0 + 1] == 0x30 && self[$0 + 2] == 0x30
        }
    }
}

private func checkAcceptEncoding(_ bytes: [UInt8]) {
    let value = String(decoding: bytes, as: UTF8.self)
    let allowed = AcceptEncoding.allowsGzip(value)
    // Only on ASCII: the parser splits Swift Characters, and a non-ASCII character can merge with an
    // appended comma or a prepended tab into one grapheme cluster (not worth a finding in a header
    // that is ASCII by RFC 9110).
    guard bytes.allSatisfy({ $0 < 0x80 }) else { return }
    check(AcceptEncoding.allowsGzip(value + ", gzip"), "\", gzip\" appended does not allow gzip")
    check(AcceptEncoding.allowsGzip(value + ", identity") == allowed, "\", identity\" appended changed the answer")
    // Not before a leading ';': the parser drops empty parameters, so ";gzip" is read as gzip (a
    // harmless quirk) while " \t;gzip" is not.
    if value.first != ";" {
        check(AcceptEncoding.allowsGzip(" \t" + value) == allowed, "leading whitespace changed the answer")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let selector = input.byte()
    // Small limits reach the boundary with short inputs; 100 is the server's default.
    let limit = selector < 0xC0 ? Int(selector % 8) + 1 : 100
    let line = input.rest()
    checkRequestLine(line, limit: limit)
    checkAcceptEncoding(line)
    return 0
}

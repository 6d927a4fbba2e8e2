// Fuzz target: the shape check of presented session tokens (`TokenHash(presented:)`), the partition
// a partitioned store reads from a token (`PartitionedCredentials.partition(ofPresented:)`), base64url
// and the text form of session ids.
//
// Invariants:
// - A token is accepted exactly when it is `usm_` + 43 base64url characters (47 bytes), as a reference
//   check written here decides; the String and the byte-buffer entry points agree.
// - An accepted token's hash is SHA-256 of its bytes (compared with swift-crypto's API).
// - The partition of an accepted token is its first 16 bits after the prefix, and it is accepted by a
//   PartitionedCredentials exactly when that partition is below its partition count; the hash is the same.
// - base64url: encoding any bytes gives `encodedLength` characters of the alphabet and decodes back
//   to the same bytes; whatever decodes re-encodes to the same text (canonical form only).
// - A session id parsed from text prints as that text; an id from 16 bytes parses back from its text.
// - Tokens made by `newToken(partition:)` and `SessionToken.generate` pass the shape check.

import FuzzSupport

@testable import SessionCore

private let partitionCounts = [1, 2, 128, 65_536]
private let credentials = partitionCounts.map { PartitionedCredentials(partitionCount: $0) }
private let pool = RandomPool()

private let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

/// The 6-bit value of each byte (-1: not base64url), built here independently of `Base64URL.decodeTable`.
private let sextets: [Int] = (0..<256).map { byte in alphabet.firstIndex(of: UInt8(byte)) ?? -1 }

private func sextet(_ byte: UInt8) -> Int? {
    let value = sextets[Int(byte)]
    return value < 0 ? nil : value
}

/// The reference shape check: `usm_` + 43 base64url characters.
private func hasTokenShape(_ bytes: [UInt8]) -> Bool {
    bytes.count == 47 && bytes.starts(with: Array("usm_".utf8)) && bytes[4...].allSatisfy { sextet($0) != nil }
}

private func encode(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    bytes.withUnsafeBytes { Base64URL.encode($0, into: &out) }
    return out
}

private func checkToken(_ bytes: [UInt8]) {
    let shaped = hasTokenShape(bytes)
    let fromBuffer = bytes.withUnsafeBufferPointer { TokenHash(presented: $0) }
    check((fromBuffer != nil) == shaped, "shape check accepted=\(fromBuffer != nil), reference=\(shaped)")
    if let text = String(validating: bytes, as: UTF8.self) {
        check(TokenHash(presented: text) == fromBuffer, "String and buffer entry points disagree")
    } else {
        // A repaired String is a different token: judged on its own bytes.
        let repaired = String(decoding: bytes, as: UTF8.self)
        check((TokenHash(presented: repaired) != nil) == hasTokenShape(Array(repaired.utf8)), "repaired text")
    }
    guard let hash = fromBuffer else {
        for credential in credentials {
            check(
                bytes.withUnsafeBufferPointer { credential.partition(ofPresented: $0) } == nil,
                "partition of a bad token"
            )
        }
        return
    }
    let reference = bytes.withUnsafeBytes { TokenHash(swiftCryptoSHA256Of: $0) }
    check(hash == reference, "hash is not SHA-256 of the token")
    check(TokenHash(of: SessionToken(rawValue: String(decoding: bytes, as: UTF8.self))) == hash, "TokenHash(of:)")

    let partition = (sextet(bytes[4])! << 12 | sextet(bytes[5])! << 6 | sextet(bytes[6])!) >> 2
    for credential in credentials {
        let found = bytes.withUnsafeBufferPointer { credential.partition(ofPresented: $0) }
        if partition < credential.partitionCount {
            check(found?.partition == partition, "partition \(String(describing: found?.partition)) != \(partition)")
            check(found?.hash == hash, "partitioned hash differs")
        } else {
            check(found == nil, "partition \(partition) accepted by \(credential.partitionCount) partitions")
        }
        let fromText = credential.partition(ofPresented: String(decoding: bytes, as: UTF8.self))
        check(fromText?.partition == found?.partition && fromText?.hash == found?.hash, "partition String overload")
    }

    // The 43 characters hold 258 bits: only those whose last 2 bits are zero are a canonical encoding.
    let decoded = Base64URL.decode(bytes[4...], expectedBytes: 32)
    check((decoded != nil) == (sextet(bytes[46])! & 3 == 0), "canonical decoding of a token's characters")
    if let decoded {
        check(encode(decoded) == Array(bytes[4...]), "token characters do not re-encode to themselves")
        check(partition == Int(decoded[0]) << 8 | Int(decoded[1]), "partition is not the first two bytes")
    }
}

private func checkBase64(_ bytes: [UInt8]) {
    let encoded = encode(bytes)
    check(encoded.count == Base64URL.encodedLength(bytes.count), "encoded length")
    check(encoded.allSatisfy { sextet($0) != nil }, "encoded character outside the alphabet")
    check(Base64URL.decode(encoded, expectedBytes: bytes.count) == bytes, "base64url round trip")

    // The input as text: whatever decodes must be its canonical encoding.
    let expected = bytes.count * 3 / 4
    if let decoded = Base64URL.decode(bytes, expectedBytes: expected) {
        check(decoded.count == expected, "decoded length")
        check(encode(decoded) == bytes, "decoded text is not canonical")
    }
}

private func checkSessionID(_ bytes: [UInt8]) {
    if let text = String(validating: bytes, as: UTF8.self), let id = SessionID(text) {
        check(id.description == text, "session id \(id) parsed from other text")
        check(text.utf8.count == SessionID.textLength, "session id text length")
    }
    if bytes.count >= 16 {
        let raw = Array(bytes.prefix(16))
        guard let id = raw.withUnsafeBytes({ SessionID(bytes: $0) }) else {
            return check(false, "16 bytes are not an id")
        }
        check(SessionID(id.description) == id, "session id does not parse back from its text")
        check(id.withUnsafeBytes { Array($0) } == raw, "session id bytes")
        for credential in credentials {
            let partition = Int(raw[0]) << 8 | Int(raw[1])
            let found = credential.partition(of: id)
            check(found == (partition < credential.partitionCount ? partition : nil), "partition of an id")
        }
    }
}

private func checkFreshTokens(_ bytes: [UInt8]) {
    guard bytes.count >= 3 else { return }
    let credential = credentials[Int(bytes[0]) % credentials.count]
    let partition = (Int(bytes[1]) << 8 | Int(bytes[2])) % credential.partitionCount
    let (token, hash) = credential.newToken(partition: partition)
    check(hasTokenShape(Array(token.rawValue.utf8)), "a new partitioned token has not the token shape")
    let found = credential.partition(ofPresented: token.rawValue)
    check(found?.partition == partition && found?.hash == hash, "a new token's partition or hash")
    let (generated, generatedHash) = SessionToken.generate(from: pool)
    check(TokenHash(presented: generated.rawValue) == generatedHash, "a generated token does not pass the check")
    check(generated.rawValue.utf8.count == SessionToken.length, "generated token length")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    checkToken(bytes)
    // The same input behind the prefix, so that mutations of the 43 characters reach the full check.
    if bytes.count <= 43 {
        checkToken(Array("usm_".utf8) + bytes + Array(repeating: UInt8(ascii: "A"), count: 43 - bytes.count))
    }
    checkBase64(bytes)
    checkSessionID(bytes)
    checkFreshTokens(bytes)
    return 0
}

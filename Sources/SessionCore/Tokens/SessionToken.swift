import CTokenDigest
import Crypto

/// A session's bearer secret: `usm_` + base64url(32 bytes from the system CSPRNG), 47 characters.
///
/// The store only ever keeps SHA-256 of it. Printing a token (string interpolation, `print`, a log
/// line) shows `usm_…redacted…`; read ``rawValue`` to hand it to the client, once.
///
/// The fixed prefix makes a leaked token recognisable by secret scanners.
public struct SessionToken: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The prefix of every token.
    public static let prefix = "usm_"
    /// Length of a token in characters (prefix + 43 base64url characters).
    public static let length = 47

    /// The token as sent to and by clients. Handle with care: it is a credential.
    public let rawValue: String

    init(rawValue: String) { self.rawValue = rawValue }

    public var description: String { "usm_…redacted…" }
    public var debugDescription: String { description }

    /// Makes a fresh token from `pool` and returns it with its hash.
    static func generate(from pool: RandomPool) -> (SessionToken, TokenHash) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(length)
        bytes.append(contentsOf: prefix.utf8)
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { secret in
            pool.fill(secret)
            Base64URL.encode(UnsafeRawBufferPointer(secret), into: &bytes)
            secret.initializeMemory(as: UInt8.self, repeating: 0)
        }
        let hash = bytes.withUnsafeBytes { TokenHash(sha256Of: $0) }
        let token = SessionToken(rawValue: String(decoding: bytes, as: UTF8.self))
        return (token, hash)
    }
}

/// SHA-256 of a token's characters: the only form in which the store (and its storage) keeps a token.
///
/// Not a secret in itself, but never logged either: `description` shows only that it is a hash.
public struct TokenHash: Hashable, Sendable, CustomStringConvertible {
    var w0: UInt64
    var w1: UInt64
    var w2: UInt64
    var w3: UInt64

    static let zero = TokenHash(w0: 0, w1: 0, w2: 0, w3: 0)

    /// The 32 bytes of the digest, from stored form; `nil` unless exactly 32 bytes.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 32 else { return nil }
        w0 = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        w1 = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        w2 = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        w3 = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
    }

    /// SHA-256 of a token, e.g. to look a session up in storage by the token a client presents.
    public init(of token: SessionToken) {
        var text = token.rawValue
        self = text.withUTF8 { TokenHash(sha256Of: UnsafeRawBufferPointer($0)) }
    }

    /// Calls `body` with the 32 bytes of the digest.
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var words = (w0, w1, w2, w3)
        let outcome = Swift.withUnsafeBytes(of: &words) { bytes -> Swift.Result<Result, Failure> in
            do throws(Failure) { return .success(try body(bytes)) } catch { return .failure(error) }
        }
        return try outcome.get()
    }

    public var description: String { "TokenHash(…)" }

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    init(sha256Of bytes: UnsafeRawBufferPointer) {
        var digest = TokenHash.zero
        let written = Swift.withUnsafeMutableBytes(of: &digest) { out in
            usm_sha256_oneshot(
                bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                bytes.count,
                out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
        if written == 1 {
            // The four words are the digest's bytes in order, as `init?(bytes:)` reads them.
            self = digest
            return
        }
        self.init(swiftCryptoSHA256Of: bytes)
    }

    /// Whether hashing goes through BoringSSL's one-shot function (see `CTokenDigest`), not
    /// swift-crypto's `SHA256` type; for tests.
    static var usesOneShotDigest: Bool {
        var digest = TokenHash.zero
        return Swift.withUnsafeMutableBytes(of: &digest) {
            usm_sha256_oneshot(nil, 0, $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
        } == 1
    }

    /// SHA-256 through swift-crypto's API: the fallback, and the reference the tests compare with.
    init(swiftCryptoSHA256Of bytes: UnsafeRawBufferPointer) {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        let digest = hasher.finalize()
        (w0, w1, w2, w3) = digest.withUnsafeBytes { raw in
            (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
    }

    /// Checks the shape of a presented token (prefix, length, alphabet) and hashes it.
    ///
    /// Returns `nil` for a malformed token. Runs in time independent of where a bad character sits.
    init?(presented token: String) {
        var token = token
        guard let hash = token.withUTF8({ TokenHash(presented: $0) }) else { return nil }
        self = hash
    }

    /// Same as ``init(presented:)-(String)``, on the token's UTF-8 bytes (for example a request
    /// header's, without making a `String` of them).
    init?(presented utf8: UnsafeBufferPointer<UInt8>) {
        guard utf8.count == SessionToken.length,
            utf8[0] == UInt8(ascii: "u"), utf8[1] == UInt8(ascii: "s"),
            utf8[2] == UInt8(ascii: "m"), utf8[3] == UInt8(ascii: "_")
        else { return nil }
        var invalid: UInt8 = 0
        for index in 4..<SessionToken.length {
            invalid |= Base64URL.decodeTable[Int(utf8[index])] & 0x80
        }
        guard invalid == 0 else { return nil }
        self.init(sha256Of: UnsafeRawBufferPointer(utf8))
    }
}

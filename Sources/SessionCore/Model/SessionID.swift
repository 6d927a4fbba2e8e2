/// A session's public identifier: 128 random bits (not derived from the token), base64url, 22 characters.
///
/// Used by admin routes, events and logs. Knowing an id grants nothing: it is not a credential.
/// The low byte carries the index of the shard the session was created in, so lookups by id go
/// straight to it.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    var w0: UInt64
    var w1: UInt64

    init(w0: UInt64, w1: UInt64) {
        self.w0 = w0
        self.w1 = w1
    }

    /// Parses the 22-character text form; `nil` if it is not a canonical session id.
    public init?(_ text: String) {
        guard let bytes = Base64URL.decode(text.utf8, expectedBytes: 16),
            let id = bytes.withUnsafeBytes({ SessionID(bytes: $0) })
        else { return nil }
        self = id
    }

    /// The 16 bytes of the id, from stored form; `nil` unless exactly 16 bytes.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 16 else { return nil }
        w0 = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        w1 = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
    }

    /// Calls `body` with the 16 bytes of the id (the bytes its text form encodes).
    public func withUnsafeBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var words = (w0, w1)
        let outcome = Swift.withUnsafeBytes(of: &words) { bytes -> Swift.Result<Result, Failure> in
            do throws(Failure) { return .success(try body(bytes)) } catch { return .failure(error) }
        }
        return try outcome.get()
    }

    /// Random id whose low byte is `shard`.
    static func generate(from pool: RandomPool, shard: Int) -> SessionID {
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { pool.fill($0) }
        return SessionID(w0: words.0 & ~0xFF | UInt64(shard & 0xFF), w1: words.1)
    }

    var shardHint: Int { Int(w0 & 0xFF) }

    /// The 22-character base64url text form.
    public var description: String {
        String(unsafeUninitializedCapacity: Self.textLength) { buffer in
            writeText(to: buffer)
            return Self.textLength
        }
    }

    /// Length of the text form.
    public static let textLength = 22

    /// Writes the 22-character text form to the start of `buffer` (at least ``textLength`` bytes),
    /// without creating a `String`.
    public func writeText(to buffer: UnsafeMutableBufferPointer<UInt8>) {
        var words = (w0, w1)
        Swift.withUnsafeBytes(of: &words) {
            Base64URL.encode($0, to: UnsafeMutableBufferPointer(rebasing: buffer[0..<Self.textLength]))
        }
    }
}

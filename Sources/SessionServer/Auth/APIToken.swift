/// The bearer secret that `/v1` routes require, compared in constant time.
public struct APIToken: Sendable, Equatable, CustomStringConvertible {
    private let bytes: [UInt8]

    /// The shortest token accepted.
    public static let minimumLength = 16

    /// - Throws: ``APIError`` `invalid_argument` when the token is shorter than 16 bytes or contains
    ///   whitespace or control characters.
    public init(_ token: String) throws(APIError) {
        let bytes = Array(token.utf8)
        guard bytes.count >= Self.minimumLength else {
            throw APIError.invalidArgument("the API token must be at least \(Self.minimumLength) bytes long")
        }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw APIError.invalidArgument("the API token must not contain whitespace or control characters")
        }
        self.bytes = bytes
    }

    /// Compares `candidate` with the token in time that depends only on the candidate's length.
    public func matches(_ candidate: some Sequence<UInt8>) -> Bool {
        var difference = 0
        var count = 0
        var index = 0
        for byte in candidate {
            difference |= Int(byte ^ bytes[index])
            count += 1
            // Wraps on the candidate's length alone (public), never on its content.
            index = index + 1 == bytes.count ? 0 : index + 1
        }
        difference |= count ^ bytes.count
        return difference == 0
    }

    /// Whether both are the same token (compared in constant time).
    public static func == (lhs: APIToken, rhs: APIToken) -> Bool {
        lhs.matches(rhs.bytes)
    }

    public var description: String { "APIToken(redacted)" }
}

/// Why a ``SessionStore`` call was refused.
///
/// A struct with an extensible ``Code`` rather than a public enum, so that new codes do not break
/// exhaustive switches. The HTTP layer maps each code to one status in one place.
///
/// ```swift
/// do { _ = try store.create(username: "") }
/// catch let error as SessionError where error.code == .invalidUsername { ... }
/// ```
public struct SessionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable, machine-readable reason. ``rawValue`` is the snake_case code of the HTTP API.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The username is empty, too long or contains control characters.
        public static let invalidUsername = Code("invalid_username")
        /// An idle timeout or lifetime is outside its allowed range.
        public static let invalidTimeout = Code("invalid_timeout")
        /// Session data is not a single valid JSON value.
        public static let invalidData = Code("invalid_data")
        /// Session data is larger than the configured cap.
        public static let dataTooLarge = Code("data_too_large")
        /// The user already has the maximum number of sessions and the policy is to reject.
        public static let sessionLimitReached = Code("session_limit_reached")
        /// The presented session token is not shaped like a token.
        public static let tokenMalformed = Code("session_token_malformed")
        /// No session has this token.
        public static let sessionUnknown = Code("session_unknown")
        /// The session existed but has passed its idle or absolute deadline.
        public static let sessionExpired = Code("session_expired")
        /// A pagination cursor was not produced by this store.
        public static let invalidCursor = Code("invalid_cursor")
        /// A limit or other argument is out of range.
        public static let invalidArgument = Code("invalid_argument")
        /// The store is full (a shard has no free slot left).
        public static let capacityExceeded = Code("capacity_exceeded")
        /// The backend cannot store the change durably right now (disk full, I/O error, store
        /// unreachable): it was refused, or, when already applied in memory, is not confirmed durable.
        public static let storageUnavailable = Code("storage_unavailable")
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

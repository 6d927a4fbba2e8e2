/// An error thrown by MicroHTTP.
///
/// The ``code`` is stable and meant for programmatic checks; the ``message`` is for humans and may change.
/// New codes can be added without breaking existing `switch`es, because ``Code`` is a struct, not an enum.
///
/// ```swift
/// do {
///     _ = try HTTPServer(configuration: .init(port: 80), handler: handler)
/// } catch let error as MicroHTTPError where error.code == .addressInUse {
///     // pick another port
/// }
/// ```
public struct MicroHTTPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable, machine-readable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as a `snake_case` string, e.g. `"address_in_use"`.
        public let rawValue: String

        /// Creates a code from its string form.
        public init(_ rawValue: String) {
            self.rawValue = rawValue
        }

        /// The configuration is invalid (bad host literal, out-of-range port, non-positive limits, ...).
        public static let invalidConfiguration = Code("invalid_configuration")
        /// The listening address is already in use.
        public static let addressInUse = Code("address_in_use")
        /// libmicrohttpd refused to start for another reason; see the message.
        public static let startFailed = Code("start_failed")
        /// zlib failed to compress (``MicroHTTPError/cause`` holds the zlib return code).
        public static let compressionFailed = Code("compression_failed")
        /// A resource of the operating system could not be created (``MicroHTTPError/cause`` holds `errno`).
        public static let systemResourceFailed = Code("system_resource_failed")

        /// A TLS certificate or key could not be loaded, or this libmicrohttpd has no TLS support.
        public static let tlsFailed = Code("tls_failed")

        /// The code as a string (``rawValue``).
        public var description: String { rawValue }
    }

    /// The stable error code.
    public var code: Code
    /// A human-readable description of what went wrong.
    public var message: String
    /// The underlying numeric cause (an `errno` value or a zlib return code), if any.
    public var cause: Int32?

    /// Creates an error.
    public init(code: Code, message: String, cause: Int32? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: message (cause N)`.
    public var description: String {
        if let cause {
            return "\(code): \(message) (cause \(cause))"
        }
        return "\(code): \(message)"
    }
}

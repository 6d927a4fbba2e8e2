/// An error answer that the server gives by itself, without asking the handler: a body above
/// ``HTTPServerConfiguration/maxBodySize``, a deferred request still waiting when a shutdown's grace
/// period ends, or a handler's response that cannot be sent.
///
/// ``HTTPServerConfiguration/errorResponse`` turns it into the response sent, so that an application
/// can give these answers the same shape as its own errors. The default is a short plain-text body.
///
/// ```swift
/// var configuration = HTTPServerConfiguration(port: 0)
/// configuration.errorResponse = { error in
///     .json(Array(#"{"error":"\#(error.code)"}"#.utf8), status: error.status)
/// }
/// ```
public struct HTTPServerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable, machine-readable reason.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as a `snake_case` string, e.g. `"body_too_large"`.
        public let rawValue: String

        private init(_ rawValue: String) {
            self.rawValue = rawValue
        }

        /// The request body is larger than ``HTTPServerConfiguration/maxBodySize`` (status 413).
        public static let bodyTooLarge = Code("body_too_large")
        /// The server is shutting down and the request could not be answered in time (status 503).
        public static let shuttingDown = Code("shutting_down")
        /// The handler's response cannot be sent as it is, e.g. its status is out of range (status 500).
        public static let internalError = Code("internal_error")
        /// The query has more arguments than ``HTTPServerConfiguration/maxQueryParameters`` (status 414).
        public static let tooManyQueryParameters = Code("too_many_query_parameters")

        public var description: String { rawValue }
    }

    /// The reason.
    public var code: Code
    /// The HTTP status to answer with.
    public var status: Int
    /// A human-readable description.
    public var message: String

    /// Creates an error.
    public init(code: Code, status: Int, message: String) {
        self.code = code
        self.status = status
        self.message = message
    }

    /// `code: message`.
    public var description: String { "\(code): \(message)" }

    /// The default rendering: `text/plain`, `<code>: <message>` and a newline.
    public static let plainTextResponse: @Sendable (HTTPServerError) -> HTTPResponse = { error in
        .text("\(error.code): \(error.message)\n", status: error.status)
    }

    static func bodyTooLarge(limit: Int) -> HTTPServerError {
        HTTPServerError(code: .bodyTooLarge, status: 413, message: "The request body exceeds \(limit) bytes.")
    }

    static let shuttingDown = HTTPServerError(
        code: .shuttingDown,
        status: 503,
        message: "The server is shutting down."
    )

    static func tooManyQueryParameters(limit: Int) -> HTTPServerError {
        HTTPServerError(
            code: .tooManyQueryParameters,
            status: 414,
            message: "The query has more than \(limit) parameters."
        )
    }

    static func internalError(_ message: String) -> HTTPServerError {
        HTTPServerError(code: .internalError, status: 500, message: message)
    }
}

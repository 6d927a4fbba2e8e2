/// An HTTP request as seen by an ``HTTPHandler``.
///
/// A request is valid only during the ``HTTPHandler/handle(_:)`` call that received it: header and query
/// lookups read libmicrohttpd's connection memory on demand, and return `nil` (or nothing) once the handler
/// has returned. Copy out what you need to keep.
public struct HTTPRequest {
    /// The method as sent by the client (`"GET"`, `"HEAD"`, `"POST"`, ...). A method that held a NUL
    /// byte ends in U+FFFD after the part before the NUL, so that it matches no real method.
    public let method: String
    /// The URL path, percent-decoded, without the query string.
    ///
    /// When the decoded path is not valid UTF-8, or held `%00`, or the raw target (path or query) held a
    /// NUL byte, ``pathIsValidUTF8`` is `false` and this
    /// is a repaired copy (U+FFFD for each bad sequence) that must not be used to name anything: two
    /// different paths can repair to the same text.
    public let path: String
    /// Whether the decoded path is valid UTF-8 without a NUL (`%00`), and the raw target (query included:
    /// libmicrohttpd would cut a query argument short at it too) held no NUL byte.
    public let pathIsValidUTF8: Bool
    /// The request body (empty when there is none).
    public let body: [UInt8]

    let context: RequestContext

    init(method: String, path: String, pathIsValidUTF8: Bool, body: [UInt8], context: RequestContext) {
        self.method = method
        self.path = path
        self.pathIsValidUTF8 = pathIsValidUTF8
        self.body = body
        self.context = context
    }

    /// The value of a request header, compared case-insensitively; the first one if it was sent several times.
    ///
    /// - Complexity: O(number of headers); nothing is copied until a header matches.
    public func header(_ name: String) -> String? {
        context.isHandling ? context.connection.header(name) : nil
    }

    /// Calls `body` with the bytes of a request header's value (the first one if it was sent several
    /// times; `nil` when it is absent), compared case-insensitively, without making a `String`.
    ///
    /// The buffer points into libmicrohttpd's connection memory and is valid only during the call.
    ///
    /// ```swift
    /// let isBearer = request.withHeader("Authorization") { value in value?.starts(with: "Bearer ".utf8) ?? false }
    /// ```
    public func withHeader<Result, Failure: Error>(
        _ name: StaticString,
        _ body: (UnsafeBufferPointer<UInt8>?) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        guard context.isHandling else { return try body(nil) }
        return try context.connection.withHeader(name, body)
    }

    /// The decoded value of a query parameter (`?name=value`), compared case-sensitively; the first one if
    /// it repeats. A parameter without `=` has the value `""`. `+` decodes to a space. Bytes that are not
    /// UTF-8 become U+FFFD: use ``withQueryParameter(_:_:)`` for a value that names something.
    public func queryParameter(_ name: String) -> String? {
        withQueryParameter(name) { value in value.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// Calls `body` with the decoded bytes of a query parameter (`nil` when absent), for values that
    /// must be valid UTF-8 rather than repaired: ``queryParameter(_:)`` replaces bad sequences with
    /// U+FFFD, and `%00` decodes to the byte 0xFF (never valid UTF-8). Valid only during the call.
    ///
    /// ```swift
    /// let name = request.withQueryParameter("username") { $0.flatMap { String(validating: $0, as: UTF8.self) } }
    /// ```
    public func withQueryParameter<Result, Failure: Error>(
        _ name: String,
        _ body: (UnsafeRawBufferPointer?) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        guard context.isHandling else { return try body(nil) }
        return try context.connection.withQueryParameter(name, body)
    }

    /// All query parameters in the order sent, decoded, including repeated and unknown ones.
    public var queryParameters: [(name: String, value: String)] {
        context.isHandling ? context.connection.queryParameters() : []
    }

    /// Whether the client accepts a gzip-encoded response (`Accept-Encoding` lists `gzip` or `*` with a
    /// `q` other than 0; `gzip;q=0` means no).
    public var acceptsGzip: Bool {
        guard let value = header("Accept-Encoding") else { return false }
        return AcceptEncoding.allowsGzip(value)
    }
}

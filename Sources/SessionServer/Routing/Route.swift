import MicroHTTP

/// One route of the HTTP API: a path template and what each of its methods does and who may call it,
/// declared once in ``SessionAPI/routes``. Routing, the `Allow` header of a 405, the token checks,
/// the request metrics created up front and the test against `openapi.yaml` all read it.
///
/// A template is literal text with at most one `{parameter}` (`/v1/users/{username}/sessions`),
/// which matches one or more bytes; it may contain `/` only when the route says so.
///
/// ```swift
/// Route("/v1/sessions/{id}", [
///     Operation("GET", 200, "getSession", .administration) { api, request, id in try api.sessionByID(id) },
/// ])
/// ```
public final class Route: Sendable {
    /// Who may call an operation, from the least privileged.
    public enum Scope: String, Sendable, Comparable {
        /// Anyone: probes and the scrape, as orchestrators and Prometheus expect.
        case open
        /// What an application backend needs for its users' sessions: holders of an API token (or of
        /// an admin token), when one is configured.
        case application
        /// Listing, revoking by id or user, deleting all, the configuration: holders of an admin
        /// token when sessiond has one (`--admin-token-file`), else as ``application``.
        case administration

        public static func < (lhs: Scope, rhs: Scope) -> Bool {
            let order: [Scope] = [.open, .application, .administration]
            return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
        }
    }

    /// What one method of a route does.
    public struct Operation: Sendable {
        /// Answers a request: the API, the request, and the value of the template's parameter (empty
        /// when it has none).
        typealias Handler = @Sendable (SessionAPI, HTTPRequest, String) throws(APIError) -> APIAnswer

        /// The method, upper case (`HEAD` is served by the `GET` operation).
        public let method: String
        /// The status of a successful answer.
        public let successStatus: Int
        /// The `operationId` of this operation in `openapi.yaml`.
        public let operationID: String
        /// Who may call it.
        public let scope: Scope
        let handler: Handler

        init(
            _ method: String,
            _ successStatus: Int,
            _ operationID: String,
            _ scope: Scope,
            _ handler: @escaping Handler
        ) {
            self.method = method
            self.successStatus = successStatus
            self.operationID = operationID
            self.scope = scope
            self.handler = handler
        }
    }

    /// The path template, e.g. `/v1/sessions/{id}`: the only form of a path that appears in metrics
    /// and logs (a raw path can carry a username).
    public let template: String
    /// The least privileged scope of its operations: what a request for a method the route does not
    /// have must show before it learns so (a 405).
    public var scope: Scope { operations.map(\.scope).min() ?? .open }
    /// Its methods, in the order of the `Allow` header (without `HEAD`).
    public let operations: [Operation]
    /// Whether the parameter may contain `/`.
    let parameterAllowsSlash: Bool
    /// The literal text before the parameter (the whole template when there is none) and after it.
    private let prefix: [UInt8]
    private let suffix: [UInt8]?
    /// The route's position in its ``RouteTable``.
    public let index: Int

    convenience init(_ template: String, parameterAllowsSlash: Bool = false, _ operations: [Operation]) {
        self.init(template, parameterAllowsSlash: parameterAllowsSlash, operations, index: 0)
    }

    /// The same route at position `index` of a table.
    convenience init(_ route: Route, index: Int) {
        self.init(
            route.template,
            parameterAllowsSlash: route.parameterAllowsSlash,
            route.operations,
            index: index
        )
    }

    private init(_ template: String, parameterAllowsSlash: Bool, _ operations: [Operation], index: Int) {
        self.template = template
        self.operations = operations
        self.parameterAllowsSlash = parameterAllowsSlash
        self.index = index
        let bytes = Array(template.utf8)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")), let close = bytes.firstIndex(of: UInt8(ascii: "}")) {
            prefix = Array(bytes[..<open])
            suffix = Array(bytes[(close + 1)...])
        } else {
            prefix = bytes
            suffix = nil
        }
    }

    /// The methods the route answers, for the `Allow` header of a 405: `HEAD` wherever `GET` is.
    public var allowedMethods: [String] {
        operations.flatMap { $0.method == "GET" ? ["GET", "HEAD"] : [$0.method] }
    }

    /// The operation for `method` (`HEAD` finds `GET`'s), if the route has one.
    func operation(for method: String) -> Operation? {
        let wanted = method == "HEAD" ? "GET" : method
        return operations.first { $0.method == wanted }
    }

    /// The parameter's value when `path` matches the template (`""` for a template without one; a
    /// parameter is never empty); `nil` otherwise. Compared as bytes: `String` comparison works on grapheme clusters and
    /// canonical equivalence, so a username starting with a combining mark would not match its route.
    func match(_ path: String) -> String? {
        let bytes = path.utf8
        guard let suffix else {
            return bytes.elementsEqual(prefix) ? "" : nil
        }
        guard bytes.count > prefix.count + suffix.count, bytes.starts(with: prefix),
            bytes.reversed().starts(with: suffix.reversed())
        else { return nil }
        // The prefix and suffix are ASCII, so both cuts fall on scalar boundaries.
        let start = bytes.index(bytes.startIndex, offsetBy: prefix.count)
        let end = bytes.index(bytes.endIndex, offsetBy: -suffix.count)
        let parameter = path[start..<end]
        if !parameterAllowsSlash && parameter.utf8.contains(UInt8(ascii: "/")) { return nil }
        return String(parameter)
    }
}

// Fuzz target: route matching of the API's route table (`SessionAPI.routes`), with arbitrary
// percent-decoded paths and methods.
//
// Invariants:
// - A match's template, with its `{parameter}` replaced by the matched parameter, is the path, byte
//   for byte; the parameter is empty exactly for templates without one, never empty otherwise, and
//   holds no `/` unless the route allows it.
// - The table answers the first route (in table order) whose own `match` accepts the path, and
//   agrees with a byte-level reference matcher written here (prefix, suffix, non-empty parameter).
// - For any method: the route has an operation for it exactly when `allowedMethods` lists it, HEAD
//   is served by GET's operation, and the route's scope is the least of its operations' scopes.
//
// Input: the first byte picks the method (a known one, a case variant, or bytes of the input), the
// rest is the path (repaired to UTF-8, as the server hands over a path that is not valid UTF-8).

import FuzzSupport
import MicroHTTP

@testable import SessionServer

private let knownMethods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "get"]

/// A template split around its parameter: prefix, parameter name, suffix (nil: no parameter).
private struct Template {
    let prefix: [UInt8]
    let suffix: [UInt8]?

    init(_ text: String) {
        let bytes = Array(text.utf8)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")), let close = bytes.firstIndex(of: UInt8(ascii: "}")) {
            prefix = Array(bytes[..<open])
            suffix = Array(bytes[(close + 1)...])
        } else {
            prefix = bytes
            suffix = nil
        }
    }

    func instantiated(with parameter: String) -> [UInt8] {
        guard let suffix else { return prefix }
        return prefix + Array(parameter.utf8) + suffix
    }

    /// The reference matcher: the parameter's bytes, or nil.
    func match(_ path: [UInt8], allowsSlash: Bool) -> [UInt8]? {
        guard let suffix else { return path == prefix ? [] : nil }
        guard path.count > prefix.count + suffix.count, path.starts(with: prefix),
            Array(path.suffix(suffix.count)) == suffix
        else { return nil }
        let parameter = Array(path[prefix.count..<(path.count - suffix.count)])
        if !allowsSlash && parameter.contains(UInt8(ascii: "/")) { return nil }
        return parameter
    }
}

private let templates = SessionAPI.routes.routes.map { Template($0.template) }

private func checkMethods(of route: Route, _ method: String) {
    let operation = route.operation(for: method)
    check(
        (operation != nil) == route.allowedMethods.contains(method),
        "\(route.template): \(method) and Allow disagree"
    )
    if method == "HEAD" {
        check(operation?.method == route.operation(for: "GET")?.method, "\(route.template): HEAD is not GET's")
    } else if let operation {
        check(operation.method == method, "\(route.template): \(method) found \(operation.method)")
    }
    check(route.scope == route.operations.map(\.scope).min(), "\(route.template): scope")
    check(!route.allowedMethods.isEmpty, "\(route.template) allows no method")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let selector = input.byte()
    let pathBytes = input.rest()
    let path = String(decoding: pathBytes, as: UTF8.self)
    let utf8 = Array(path.utf8)
    let method: String
    if selector < 0xF0 {
        method = knownMethods[Int(selector) % knownMethods.count]
    } else {
        // Some bytes of the input as the method: methods the table never heard of.
        method = String(decoding: pathBytes.prefix(Int(selector & 0x0F)), as: UTF8.self)
    }

    let table = SessionAPI.routes
    let match = table.match(path)
    let firstRouteMatch = table.routes.firstIndex { $0.match(path) != nil }
    let reference = table.routes.indices.first {
        templates[$0].match(utf8, allowsSlash: table.routes[$0].parameterAllowsSlash) != nil
    }
    check(match?.route.index == firstRouteMatch, "the table did not answer the first matching route")
    check(
        match?.route.index == reference,
        "table \(String(describing: match?.route.template)), reference \(String(describing: reference.map { table.routes[$0].template }))"
    )

    guard let match else { return 0 }
    let route = match.route
    let template = templates[route.index]
    check(route === table.routes[route.index], "route index")
    check(route.match(path) == match.parameter, "the route's own match differs from the table's")
    check(
        template.instantiated(with: match.parameter) == utf8,
        "\(route.template) with \(match.parameter.debugDescription) is not the path"
    )
    check(match.parameter.isEmpty == (template.suffix == nil), "\(route.template): parameter emptiness")
    if !route.parameterAllowsSlash {
        check(!match.parameter.utf8.contains(UInt8(ascii: "/")), "\(route.template): a parameter with '/'")
    }
    let expected = template.match(utf8, allowsSlash: route.parameterAllowsSlash)
    check(expected == Array(match.parameter.utf8), "the parameter differs from the reference's")
    checkMethods(of: route, method)
    return 0
}

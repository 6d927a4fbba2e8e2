/// The routes of the API, each declared once (``SessionAPI/routes``), and what derives from them:
/// matching a path, the route labels and request counters that metrics create up front.
///
/// Routes are tried in order, so the most frequent come first.
public struct RouteTable: Sendable {
    /// A path matched to its route.
    public struct Match: Sendable {
        public let route: Route
        /// The value of the template's parameter (empty when it has none).
        public let parameter: String
    }

    /// The routes, in matching order; each one's ``Route/index`` is its position.
    public let routes: [Route]

    init(_ routes: [Route]) {
        let templates = Set(routes.map(\.template))
        precondition(templates.count == routes.count, "a template is declared twice")
        self.routes = routes.enumerated().map { Route($1, index: $0) }
    }

    /// The route of a percent-decoded path, or `nil`.
    public func match(_ path: String) -> Match? {
        for route in routes {
            if let parameter = route.match(path) { return Match(route: route, parameter: parameter) }
        }
        return nil
    }

    /// Every template with the methods it answers (`HEAD` included) and their success status, for
    /// `SessionMetrics`, which creates those request counters at zero.
    public var catalogue: [(template: String, responses: [(method: String, status: Int)])] {
        routes.map { route in
            (route.template, route.allowedMethods.map { ($0, route.operation(for: $0)!.successStatus) })
        }
    }
}

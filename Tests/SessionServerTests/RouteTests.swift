import Testing

@testable import SessionServer

struct RouteTests {
    let routes = SessionAPI.routes

    @Test(arguments: [
        ("/v1/sessions", "/v1/sessions"), ("/v1/session", "/v1/session"), ("/v1/session/data", "/v1/session/data"),
        ("/v1/session/rotate", "/v1/session/rotate"), ("/v1/sessions/abc", "/v1/sessions/{id}"),
        ("/v1/users", "/v1/users"), ("/v1/users/ada@example.com/sessions", "/v1/users/{username}/sessions"),
        ("/v1/users/a/b/sessions", "/v1/users/{username}/sessions"), ("/v1/config", "/v1/config"),
        ("/v1/events", "/v1/events"), ("/metrics", "/metrics"), ("/healthz", "/healthz"), ("/readyz", "/readyz"),
    ])
    func knownPathsMatchTheirTemplate(path: String, template: String) throws {
        let match = try #require(routes.match(path))
        #expect(match.route.template == template)
    }

    @Test(arguments: [
        "/", "/v1", "/v1/", "/v1/sessions/", "/v1/sessions/a/b", "/v1/users//sessions", "/v2/sessions", "/v1/Session",
    ])
    func unknownPathsDoNotMatch(path: String) {
        #expect(routes.match(path) == nil)
    }

    @Test func parametersAreExtracted() {
        #expect(routes.match("/v1/users/a/b/sessions")?.parameter == "a/b")
        #expect(routes.match("/v1/sessions/xyz")?.parameter == "xyz")
        #expect(routes.match("/v1/session")?.parameter == "")
    }

    @Test func pathsAreMatchedByBytesNotByCharacters() throws {
        // A username starting with a combining mark: "/" and U+0301 form one grapheme cluster, so a
        // String prefix test fails on it. Likewise a name ending in a prepended concatenation mark.
        let combining = try #require(routes.match("/v1/users/\u{301}x/sessions"))
        #expect(combining.route.template == "/v1/users/{username}/sessions")
        #expect(Array(combining.parameter.utf8) == Array("\u{301}x".utf8))
        let prepend = try #require(routes.match("/v1/users/x\u{600}/sessions"))
        #expect(Array(prepend.parameter.utf8) == Array("x\u{600}".utf8))
        // A session id that is a lone combining mark after "/": no "/" inside, one id.
        #expect(routes.match("/v1/sessions/\u{301}")?.parameter == "\u{301}")
        #expect(routes.match("/v1/sessions/abc/\u{301}") == nil)
        // Canonically equivalent is not equal: KELVIN SIGN is not K.
        #expect(routes.match("/v1/users/\u{212A}/sessions").map { Array($0.parameter.utf8) } == Array("\u{212A}".utf8))
    }

    @Test func eachRouteKnowsItsPositionInTheTable() {
        for (position, route) in routes.routes.enumerated() {
            #expect(route.index == position)
            #expect(
                routes.match(route.template.replacing("{id}", with: "x").replacing("{username}", with: "u"))?.route
                    .index == position
            )
        }
    }

    @Test func headIsServedWhereverGetIs() throws {
        for route in routes.routes {
            let hasGet = route.operations.contains { $0.method == "GET" }
            #expect(route.allowedMethods.contains("HEAD") == hasGet, "\(route.template)")
            #expect((route.operation(for: "HEAD") != nil) == hasGet, "\(route.template)")
            #expect(route.operation(for: "BREW") == nil && route.operation(for: "get") == nil)
        }
    }

    @Test func onlyProbesAndTheScrapeAreOpenWithoutTheAPIToken() {
        let open = routes.routes.filter { $0.scope == .open }.map(\.template)
        #expect(Set(open) == ["/metrics", "/healthz", "/readyz"])
        #expect(routes.routes.allSatisfy { $0.scope == .open || $0.template.hasPrefix("/v1/") })
    }

    /// What an application backend does with its users' sessions needs an API token only; everything
    /// that reaches other users' sessions or the configuration is administrative.
    @Test func theAPITokenKeepsOnlyWhatAnApplicationNeeds() {
        let application = routes.routes.flatMap { route in
            route.operations.filter { $0.scope == .application }.map(\.operationID)
        }
        #expect(
            Set(application) == [
                "createSession", "validateSession", "logout", "getSessionData", "putSessionData", "rotateSession",
                "events",
            ]
        )
        #expect(Route.Scope.open < .application && Route.Scope.application < .administration)
    }

    @Test func theMetricsCatalogueHasEveryMethodWithItsSuccessStatus() throws {
        let catalogue = Dictionary(uniqueKeysWithValues: routes.catalogue.map { ($0.template, $0.responses) })
        let sessions = try #require(catalogue["/v1/sessions"])
        #expect(sessions.map(\.method) == ["GET", "HEAD", "POST", "DELETE"])
        #expect(sessions.map(\.status) == [200, 200, 201, 200])
        #expect(catalogue["/v1/session"]?.map(\.status) == [200, 200, 204])
        #expect(catalogue.count == routes.routes.count)
    }

    /// The table and `openapi.yaml` describe the same routes: the same templates, methods and
    /// operation ids, the same success status (the lowest 2xx documented) and the same scope (an
    /// operation with `security: []` is open, one with `security: [{adminToken: []}]` administrative).
    @Test func theTableAndTheOpenAPIDocumentDescribeTheSameRoutes() throws {
        let documented = try OpenAPIOperations.read()
        let declared = Set(
            routes.routes.flatMap { route in
                route.operations.map { operation in
                    OpenAPIOperations.Operation(
                        template: route.template,
                        method: operation.method,
                        operationID: operation.operationID,
                        successStatus: operation.successStatus,
                        scope: operation.scope.rawValue
                    )
                }
            }
        )
        #expect(
            documented.subtracting(declared).isEmpty,
            "documented, not declared: \(documented.subtracting(declared))"
        )
        #expect(
            declared.subtracting(documented).isEmpty,
            "declared, not documented: \(declared.subtracting(documented))"
        )
    }
}

struct MediaTypeTests {
    @Test(arguments: [
        "application/json", "Application/JSON", "application/json; charset=utf-8", " application/json;charset=UTF-8",
        "application/json ; x=y",
    ])
    func jsonMediaTypesAreAccepted(value: String) {
        #expect(SessionAPI.isJSONMediaType(value))
    }

    @Test(arguments: [
        "", "text/plain", "application/jsonx", "application/json-patch+json", "application/jso",
        "application/x-www-form-urlencoded", "applicationXjson", "application\u{0F}json", "APPLICATION\u{0F}JSON",
    ])
    func otherMediaTypesAreRefused(value: String) {
        #expect(!SessionAPI.isJSONMediaType(value))
    }
}

import Testing
@testable import SessionServer

struct RouteTests {
    @Test(arguments: [
        ("/v1/sessions", "/v1/sessions"), ("/v1/session", "/v1/session"), ("/v1/session/data", "/v1/session/data"),
        ("/v1/session/rotate", "/v1/session/rotate"), ("/v1/sessions/abc", "/v1/sessions/{id}"),
        ("/v1/users", "/v1/users"), ("/v1/users/ada@example.com/sessions", "/v1/users/{username}/sessions"),
        ("/v1/users/a/b/sessions", "/v1/users/{username}/sessions"), ("/v1/config", "/v1/config"),
        ("/v1/events", "/v1/events"), ("/metrics", "/metrics"), ("/healthz", "/healthz"), ("/readyz", "/readyz"),
    ])
    func knownPathsMatchTheirTemplate(path: String, template: String) throws {
        let route = try #require(Route(path: path))
        #expect(route.template == template)
        #expect(Route.allTemplates.contains(template))
    }

    @Test(arguments: ["/", "/v1", "/v1/", "/v1/sessions/", "/v1/sessions/a/b", "/v1/users//sessions", "/v2/sessions", "/v1/Session"])
    func unknownPathsDoNotMatch(path: String) {
        #expect(Route(path: path) == nil)
    }

    @Test func parametersAreExtracted() {
        #expect(Route(path: "/v1/users/a/b/sessions") == .userSessions(username: "a/b"))
        #expect(Route(path: "/v1/sessions/xyz") == .sessionByID("xyz"))
    }

    @Test func ordinalsArePositionsInAll() {
        for (position, route) in Route.all.enumerated() { #expect(route.ordinal == position) }
        #expect(Route.sessionByID("x").ordinal == Route.sessionByID("").ordinal)
    }

    @Test func allowsAgreesWithTheAllowHeaderList() {
        for route in Route.all {
            for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW", "get", ""] {
                #expect(route.allows(method) == route.allowedMethods.contains(method), "\(route.template) \(method)")
            }
        }
    }

    @Test func onlyProbesAreOpenWithoutTheAPIToken() {
        #expect(!Route.healthz.requiresAPIToken && !Route.readyz.requiresAPIToken && !Route.metrics.requiresAPIToken)
        #expect(Route.sessions.requiresAPIToken && Route.events.requiresAPIToken && Route.config.requiresAPIToken)
    }
}

struct MediaTypeTests {
    @Test(arguments: ["application/json", "Application/JSON", "application/json; charset=utf-8", " application/json;charset=UTF-8", "application/json ; x=y"])
    func jsonMediaTypesAreAccepted(value: String) {
        #expect(SessionAPI.isJSONMediaType(value))
    }

    @Test(arguments: ["", "text/plain", "application/jsonx", "application/json-patch+json", "application/jso", "application/x-www-form-urlencoded", "applicationXjson"])
    func otherMediaTypesAreRefused(value: String) {
        #expect(!SessionAPI.isJSONMediaType(value))
    }
}

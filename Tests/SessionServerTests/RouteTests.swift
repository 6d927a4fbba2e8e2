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

    @Test func pathsAreMatchedByBytesNotByCharacters() throws {
        // A username starting with a combining mark: "/" and U+0301 form one grapheme cluster, so a
        // String prefix test fails on it. Likewise a name ending in a prepended concatenation mark.
        let combining = try #require(Route(path: "/v1/users/\u{301}x/sessions"))
        #expect(combining == .userSessions(username: "\u{301}x"))
        #expect(combining.userSessionsUsernameBytes == Array("\u{301}x".utf8))
        let prepend = try #require(Route(path: "/v1/users/x\u{600}/sessions"))
        #expect(prepend.userSessionsUsernameBytes == Array("x\u{600}".utf8))
        // A session id that is a lone combining mark after "/": no "/" inside, one id.
        #expect(Route(path: "/v1/sessions/\u{301}") == .sessionByID("\u{301}"))
        #expect(Route(path: "/v1/sessions/abc/\u{301}") == nil)
        // Canonically equivalent is not equal: KELVIN SIGN is not K.
        #expect(Route(path: "/v1/users/\u{212A}/sessions")?.userSessionsUsernameBytes == Array("\u{212A}".utf8))
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

extension Route {
    /// The username of a `userSessions` route as UTF-8 bytes (`==` on `String` would not tell
    /// canonically equivalent spellings apart).
    fileprivate var userSessionsUsernameBytes: [UInt8]? {
        if case .userSessions(let username) = self { Array(username.utf8) } else { nil }
    }
}

extension SessionAPI {
    /// Every route of the API, each declared once: template, scope, and for each method its success
    /// status, its `operationId` in `openapi.yaml` and its handler. The most frequent routes come
    /// first (they are matched in order).
    ///
    /// Adding a route is one entry here, its handler, and its operation in `openapi.yaml` (a test
    /// compares the two).
    public static let routes = RouteTable([
        Route(
            "/v1/session",
            scope: .application,
            [
                .init("GET", 200, "validateSession") { api, request, _ throws(APIError) in
                    try api.validateSession(request)
                },
                .init("DELETE", 204, "logout") { api, request, _ throws(APIError) in try api.logout(request) },
            ]
        ),
        Route(
            "/v1/sessions",
            scope: .application,
            [
                .init("GET", 200, "listSessions") { api, request, _ throws(APIError) in try api.listSessions(request) },
                .init("POST", 201, "createSession") { api, request, _ throws(APIError) in try api.createSession(request)
                },
                .init("DELETE", 200, "deleteAllSessions") { api, request, _ throws(APIError) in
                    try api.deleteAllSessions(request)
                },
            ]
        ),
        Route(
            "/v1/session/data",
            scope: .application,
            [
                .init("GET", 200, "getSessionData") { api, request, _ throws(APIError) in try api.readData(request) },
                .init("PUT", 200, "putSessionData") { api, request, _ throws(APIError) in try api.writeData(request) },
            ]
        ),
        Route(
            "/v1/session/rotate",
            scope: .application,
            [.init("POST", 200, "rotateSession") { api, request, _ throws(APIError) in try api.rotate(request) }]
        ),
        Route(
            "/v1/sessions/{id}",
            scope: .application,
            [
                .init("GET", 200, "getSession") { api, _, id throws(APIError) in try api.sessionByID(id) },
                .init("DELETE", 204, "revokeSession") { api, _, id throws(APIError) in try api.revoke(id) },
            ]
        ),
        Route(
            "/v1/users",
            scope: .application,
            [.init("GET", 200, "listUsers") { api, request, _ throws(APIError) in try api.listUsers(request) }]
        ),
        Route(
            "/v1/users/{username}/sessions",
            scope: .application,
            parameterAllowsSlash: true,
            [.init("DELETE", 200, "revokeUserSessions") { api, _, username in api.revokeAll(username) }]
        ),
        Route(
            "/v1/config",
            scope: .application,
            [
                .init("GET", 200, "getConfig") { api, _, _ in api.readConfiguration() },
                .init("PATCH", 200, "patchConfig") { api, request, _ throws(APIError) in
                    try api.patchConfiguration(request)
                },
            ]
        ),
        Route(
            "/v1/events",
            scope: .application,
            [.init("GET", 200, "events") { api, request, _ throws(APIError) in try api.subscribe(request) }]
        ),
        Route(
            "/metrics",
            scope: .open,
            [.init("GET", 200, "metrics") { api, request, _ throws(APIError) in try api.scrape(request) }]
        ),
        Route("/healthz", scope: .open, [.init("GET", 200, "health") { api, _, _ in api.health() }]),
        Route(
            "/readyz",
            scope: .open,
            [.init("GET", 200, "ready") { api, _, _ throws(APIError) in try api.readiness() }]
        ),
    ])
}

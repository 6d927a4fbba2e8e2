extension SessionAPI {
    /// Every route of the API, each declared once: template, and for each method its success
    /// status, its `operationId` in `openapi.yaml`, its scope and its handler. The most frequent
    /// routes come first (they are matched in order).
    ///
    /// Adding a route is one entry here, its handler, and its operation in `openapi.yaml` (a test
    /// compares the two).
    public static let routes = RouteTable([
        Route(
            "/v1/session",
            [
                .init("GET", 200, "validateSession", .application) { api, request, _ throws(APIError) in
                    try api.validateSession(request)
                },
                .init("DELETE", 204, "logout", .application) { api, request, _ throws(APIError) in
                    try api.logout(request)
                },
            ]
        ),
        Route(
            "/v1/sessions",
            [
                .init("GET", 200, "listSessions", .administration) { api, request, _ throws(APIError) in
                    try api.listSessions(request)
                },
                .init("POST", 201, "createSession", .application) { api, request, _ throws(APIError) in
                    try api.createSession(request)
                },
                .init("DELETE", 200, "deleteAllSessions", .administration) { api, request, _ throws(APIError) in
                    try api.deleteAllSessions(request)
                },
            ]
        ),
        Route(
            "/v1/session/data",
            [
                .init("GET", 200, "getSessionData", .application) { api, request, _ throws(APIError) in
                    try api.readData(request)
                },
                .init("PUT", 200, "putSessionData", .application) { api, request, _ throws(APIError) in
                    try api.writeData(request)
                },
            ]
        ),
        Route(
            "/v1/session/rotate",
            [
                .init("POST", 200, "rotateSession", .application) { api, request, _ throws(APIError) in
                    try api.rotate(request)
                }
            ]
        ),
        Route(
            "/v1/sessions/{id}",
            [
                .init("GET", 200, "getSession", .administration) { api, _, id throws(APIError) in
                    try api.sessionByID(id)
                },
                .init("DELETE", 204, "revokeSession", .administration) { api, _, id throws(APIError) in
                    try api.revoke(id)
                },
            ]
        ),
        Route(
            "/v1/users",
            [
                .init("GET", 200, "listUsers", .administration) { api, request, _ throws(APIError) in
                    try api.listUsers(request)
                }
            ]
        ),
        Route(
            "/v1/users/{username}/sessions",
            parameterAllowsSlash: true,
            [
                .init("DELETE", 200, "revokeUserSessions", .administration) { api, _, username in
                    api.revokeAll(username)
                }
            ]
        ),
        Route(
            "/v1/config",
            [
                .init("GET", 200, "getConfig", .administration) { api, _, _ in api.readConfiguration() },
                .init("PATCH", 200, "patchConfig", .administration) { api, request, _ throws(APIError) in
                    try api.patchConfiguration(request)
                },
            ]
        ),
        Route(
            "/v1/events",
            [
                .init("GET", 200, "events", .application) { api, request, _ throws(APIError) in
                    try api.subscribe(request)
                }
            ]
        ),
        Route(
            "/metrics",
            [.init("GET", 200, "metrics", .open) { api, request, _ throws(APIError) in try api.scrape(request) }]
        ),
        Route("/healthz", [.init("GET", 200, "health", .open) { api, _, _ in api.health() }]),
        Route(
            "/readyz",
            [.init("GET", 200, "ready", .open) { api, _, _ throws(APIError) in try api.readiness() }]
        ),
    ])
}

import MicroHTTP
import SessionCore
import SessionMetrics

/// `GET /metrics` (and `HEAD`): the Prometheus scrape, following client_golang's handler contract:
/// text format 0.0.4 whatever `Accept` says, gzip when accepted, the whole body rendered before
/// answering, `500` with a one-line text body and no partial output when rendering fails, and
/// `promhttp_metric_handler_*` self-metrics.
///
/// The session counts come from the backend's ``SessionBackend/statistics()`` at every scrape.
public struct MetricsEndpoint: Sendable {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let metrics: SessionMetrics
    public let backend: any SessionBackend

    public init(metrics: SessionMetrics, backend: any SessionBackend) {
        self.metrics = metrics
        self.backend = backend
    }

    /// The scrape's answer (later when the backend's statistics are). When rendering fails, or the
    /// backend cannot give its statistics, the answer is a 500 with a one-line text body.
    func answer(_ request: HTTPRequest) -> APIAnswer {
        metrics.scrapeStarted()
        let metrics = metrics
        let render: @Sendable (Result<SessionStatistics, SessionError>) -> HTTPResponse = { result in
            do {
                let body = try metrics.exposition(result.get())
                metrics.scrapeFinished(code: 200)
                return HTTPResponse(
                    status: 200,
                    headers: [("Content-Type", Self.contentType), ("Cache-Control", "no-store")],
                    body: body,
                    compressIfAccepted: true
                )
            } catch {
                metrics.scrapeFinished(code: 500)
                return HTTPResponse.text("An error has occurred while serving metrics: \(error)\n", status: 500)
            }
        }
        switch backend.statistics() {
        case .completed(let result):
            return .now(render(result))
        case .pending(let promise):
            return .later { respond in promise.whenComplete { result in respond { render(result) } } }
        }
    }

    /// A handler for a metrics-only listener (`--metrics-address`): `/metrics`, and 404 elsewhere.
    public var standaloneHandler: @Sendable (HTTPRequest) -> HTTPResponse {
        { [self] request in
            guard request.path == "/metrics" else { return APIError.notFound.response }
            guard request.method == "GET" || request.method == "HEAD" else {
                return APIError.methodNotAllowed(["GET", "HEAD"]).response
            }
            switch answer(request) {
            case .now(let response):
                return response
            case .later(let completion):
                return HTTPResponse(deferred: { responder in completion { responder.respond(building: $0) } })
            }
        }
    }
}

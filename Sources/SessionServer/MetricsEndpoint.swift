import MicroHTTP
import SessionMetrics

/// `GET /metrics` (and `HEAD`): the Prometheus scrape, following client_golang's handler contract
/// (PROMETHEUS.md §1.4): text format 0.0.4 whatever `Accept` says, gzip when accepted, the whole
/// body rendered before answering, `500` with a one-line text body and no partial output when
/// rendering fails, and `promhttp_metric_handler_*` self-metrics.
public struct MetricsEndpoint: Sendable {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let metrics: SessionMetrics

    public init(metrics: SessionMetrics) {
        self.metrics = metrics
    }

    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            return APIError.methodNotAllowed(["GET", "HEAD"]).response
        }
        metrics.scrapeStarted()
        do {
            let body = try metrics.exposition()
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

    /// A handler for a metrics-only listener (`--metrics-address`): `/metrics`, and 404 elsewhere.
    public var standaloneHandler: @Sendable (HTTPRequest) -> HTTPResponse {
        { [self] request in
            request.path == "/metrics" ? handle(request) : APIError.notFound.response
        }
    }
}

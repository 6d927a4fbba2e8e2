import ArgumentParser
import MicroHTTP

/// Where and how sessiond serves HTTP: address, threads, limits, the metrics listener, shutdown.
struct HTTPOptions: ParsableArguments {
    @Option(help: "Address to listen on (IPv4 or IPv6 literal, or localhost).")
    var host = "127.0.0.1"

    @Option(help: "TCP port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "HTTP worker threads (libmicrohttpd thread pool).")
    var threads = HTTPServerConfiguration.defaultThreadCount

    @Option(help: "Largest request body, in bytes (413 above).")
    var maxBodyBytes = 64 * 1024

    @Option(
        help:
            "Request line plus headers budget, in bytes: always served up to it in lines of 64 bytes or more; 431 when far above."
    )
    var maxHeaderBytes = 8 * 1024

    @Option(help: "Most simultaneous connections (default: what the descriptor limit allows, at most 65536).")
    var connectionLimit: Int?

    @Option(
        help:
            "Most simultaneous connections from one client (IPv4 address or IPv6 /64), loopback included (0: no limit)."
    )
    var maxConnectionsPerClient = 64

    @Option(help: "Seconds after which an idle or stalled connection is closed.")
    var connectionTimeout: Double = 30

    @Option(help: "Seconds a request's line and headers may take to arrive, from their first byte (0: no limit).")
    var headerTimeout: Double = 5

    @Option(help: "Seconds a request body may take to arrive, from the end of its headers (0: no limit).")
    var bodyTimeout: Double = 10

    @Option(help: "Most simultaneous /v1/events subscribers.")
    var maxEventSubscribers = 1000

    @Option(help: "Serve /metrics on this separate host:port only (e.g. 127.0.0.1:9100) instead of the API port.")
    var metricsAddress: String?

    @Option(help: "Seconds to let in-flight requests finish at shutdown.")
    var shutdownGrace: Double = 10

    /// The host libmicrohttpd binds (`localhost` is 127.0.0.1).
    var bindHost: String { host == "localhost" ? "127.0.0.1" : host }

    /// How the API server is configured.
    ///
    /// - Parameter descriptors: the process's descriptor limit: the default connection limit leaves
    ///   256 of them for files, storage and the metrics listener, and a larger `--connection-limit`
    ///   is refused.
    func serverConfiguration(
        descriptors: Int,
        errorLog: @escaping @Sendable (String) -> Void
    ) throws -> HTTPServerConfiguration {
        guard maxBodyBytes >= 1024 else { throw StartupError("--max-body-bytes must be at least 1024") }
        let timeout = try OptionValue.milliseconds(connectionTimeout, "--connection-timeout", within: 0.001...86_400)
        let headerDeadline = try OptionValue.milliseconds(headerTimeout, "--header-timeout", within: 0...3600)
        let bodyDeadline = try OptionValue.milliseconds(bodyTimeout, "--body-timeout", within: 0...3600)
        let available = max(64, descriptors - 256)
        if let connectionLimit, connectionLimit > available {
            throw StartupError(
                "--connection-limit \(connectionLimit) exceeds what the descriptor limit (\(descriptors)) allows: at most \(available)"
            )
        }
        guard maxConnectionsPerClient >= 0 else {
            throw StartupError("--max-connections-per-client must not be negative")
        }
        return HTTPServerConfiguration(
            host: bindHost,
            port: port,
            threadCount: threads,
            connectionLimit: connectionLimit ?? min(available, 65_536),
            connectionTimeout: .milliseconds(timeout),
            maxBodySize: maxBodyBytes,
            maxHeaderBytes: maxHeaderBytes,
            perIPConnectionLimit: maxConnectionsPerClient,
            headerTimeout: .milliseconds(headerDeadline),
            bodyTimeout: .milliseconds(bodyDeadline),
            errorLog: errorLog
        )
    }

    /// The metrics listener's host and port, when `--metrics-address` is set.
    func metricsListener() throws -> (host: String, port: Int)? {
        guard let metricsAddress else { return nil }
        guard let colon = metricsAddress.lastIndex(of: ":"),
            let port = Int(metricsAddress[metricsAddress.index(after: colon)...])
        else {
            throw StartupError("--metrics-address must be host:port, e.g. 127.0.0.1:9100")
        }
        var host = metricsAddress[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return (String(host), port)
    }

    /// How long a shutdown lets requests finish.
    func gracePeriod() throws -> Duration {
        .milliseconds(try OptionValue.milliseconds(shutdownGrace, "--shutdown-grace", within: 0...3600))
    }
}

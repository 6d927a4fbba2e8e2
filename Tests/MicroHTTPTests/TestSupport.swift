import HTTPTestSupport
import Synchronization

@testable import MicroHTTP

#if canImport(Glibc)
import Glibc
#endif

/// Collects the writers of streams opened by the test handler.
final class StreamHub: Sendable {
    let writers = Mutex<[HTTPStreamWriter]>([])
    let closedCount = Atomic<Int>(0)
    /// The server threads that handled a `/stream` request (they also run its content reader).
    let serverThreads = Mutex<Set<pthread_t>>([])
    /// `/slow` requests whose handler has started.
    let slowRequestsStarted = Atomic<Int>(0)

    func add(_ writer: HTTPStreamWriter) {
        writer.onClose { [self] in
            closedCount.add(1, ordering: .relaxed)
        }
        writers.withLock { $0.append(writer) }
    }

    var closed: Int {
        closedCount.load(ordering: .relaxed)
    }

    var count: Int {
        writers.withLock { $0.count }
    }

    var all: [HTTPStreamWriter] {
        writers.withLock { $0 }
    }
}

/// A compressible text of about 20 KiB.
let compressibleText: String = (0..<400).map { "line \($0): the quick brown fox jumps over the lazy dog\n" }.joined()

/// The routes the tests talk to.
struct TestHandler: HTTPHandler {
    let hub: StreamHub

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        switch request.path {
        case "/echo":
            return HTTPResponse(
                status: 200,
                headers: [("Content-Type", "application/octet-stream"), ("X-Method", request.method)],
                body: request.body
            )
        case "/header":
            let name = request.queryParameter("name") ?? ""
            return .text(request.header(name) ?? "<none>")
        case "/header-bytes":
            // The byte-level lookup of a fixed name; "<none>" when absent.
            return .text(
                request.withHeader("X-Token") { value in value.map { String(decoding: $0, as: UTF8.self) } ?? "<none>" }
            )
        case "/query":
            var lines = request.queryParameters.map { "\($0.name)=\($0.value)" }
            lines.append("lookup-a=\(request.queryParameter("a") ?? "<nil>")")
            lines.append("lookup-A=\(request.queryParameter("A") ?? "<nil>")")
            lines.append("lookup-missing=\(request.queryParameter("missing") ?? "<nil>")")
            return .text(lines.joined(separator: "\n"))
        case "/compressible":
            var response = HTTPResponse.text(compressibleText)
            response.compressIfAccepted = true
            return response
        case "/small":
            var response = HTTPResponse.text("tiny")
            response.compressIfAccepted = true
            return response
        case "/big":
            return HTTPResponse(status: 200, body: [UInt8](repeating: 0x61, count: 8 << 20))
        case "/bad-status":
            return HTTPResponse(status: 42, body: Array("never sent".utf8))
        case "/bad-stream-status":
            return HTTPResponse(status: -1, stream: HTTPStreamConfiguration { writer in writer.finish() })
        case "/bad-header":
            return HTTPResponse(
                status: 200,
                headers: [("Content-Length", "999"), ("X-Fine", "yes")],
                body: Array("ok".utf8)
            )
        case "/slow":
            hub.slowRequestsStarted.add(1, ordering: .relaxed)
            usleep(600_000)
            return .text("slow done")
        case "/stream":
            let hub = self.hub
            _ = hub.serverThreads.withLock { $0.insert(pthread_self()) }
            return HTTPResponse(
                headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
                stream: HTTPStreamConfiguration(bufferLimit: 64 * 1024) { writer in
                    hub.add(writer)
                    _ = writer.write(": hello\n\n")
                }
            )
        case let path where path.hasPrefix("/path/"):
            return .text(request.pathIsValidUTF8 ? path : "invalid: \(path)")
        default:
            return .text("No route for \(request.path).\n", status: 404)
        }
    }
}

/// An ``HTTPServerConfiguration/errorResponse`` hook that renders the server's own errors as
/// `{"error":{"code":…,"message":…}}`, for tests that check the hook is used.
let jsonErrorResponse: @Sendable (HTTPServerError) -> HTTPResponse = { error in
    .json(Array(#"{"error":{"code":"\#(error.code)","message":"\#(error.message)"}}"#.utf8), status: error.status)
}

/// Runs `body` against a fresh server on 127.0.0.1 and an ephemeral port, then shuts it down.
func withServer(
    _ configuration: HTTPServerConfiguration = HTTPServerConfiguration(port: 0, threadCount: 2),
    hub: StreamHub = StreamHub(),
    _ body: (HTTPServer, StreamHub) throws -> Void
) throws {
    let server = try HTTPServer(configuration: configuration, handler: TestHandler(hub: hub))
    defer { server.shutdown(gracePeriod: .seconds(1)) }
    try body(server, hub)
}

/// `gunzip -c` through a pipe.
func gunzip(_ bytes: [UInt8]) throws -> [UInt8] {
    var input: [Int32] = [0, 0]
    var output: [Int32] = [0, 0]
    guard pipe(&input) == 0, pipe(&output) == 0 else { throw TestClientError(description: "pipe failed") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, input[0], 0)
    posix_spawn_file_actions_adddup2(&actions, output[1], 1)
    posix_spawn_file_actions_addclose(&actions, input[1])
    posix_spawn_file_actions_addclose(&actions, output[0])
    var pid: pid_t = 0
    let arguments: [UnsafeMutablePointer<CChar>?] = [strdup("gzip"), strdup("-dc"), nil]
    defer { for argument in arguments { free(argument) } }
    let spawned = posix_spawnp(&pid, "gzip", &actions, nil, arguments, environ)
    close(input[0])
    close(output[1])
    guard spawned == 0 else { throw TestClientError(description: "spawn gzip failed: \(spawned)") }
    // Inputs in the tests are small enough for the pipe buffer; write everything, then read.
    _ = bytes.withUnsafeBytes { write(input[1], $0.baseAddress, $0.count) }
    close(input[1])
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
        if count <= 0 { break }
        result += chunk[0..<count]
    }
    close(output[0])
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    guard status == 0 else { throw TestClientError(description: "gzip -dc exited with status \(status)") }
    return result
}

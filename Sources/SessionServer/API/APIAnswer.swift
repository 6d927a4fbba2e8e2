import MicroHTTP
import SessionCore

/// What a route handler produces: a response now, or one that a backend reply completes later.
enum APIAnswer: Sendable {
    /// Gives the function it receives, once and from any thread, what builds the response (built then
    /// on the server thread that sends it, see ``HTTPResponder/respond(building:)``).
    typealias Completion = @Sendable (@escaping @Sendable (@escaping @Sendable () -> HTTPResponse) -> Void) -> Void

    case now(HTTPResponse)
    case later(Completion)

    /// The answer to a backend reply: `render` turns a success into the response, and any error
    /// (thrown by the backend or by `render`) becomes the error answer.
    static func from<Value: Sendable>(
        _ reply: SessionReply<Value>,
        _ render: @escaping @Sendable (Value) throws(APIError) -> HTTPResponse
    ) -> APIAnswer {
        switch reply {
        case .completed(let result):
            return .now(response(result, render))
        case .pending(let promise):
            return .later { respond in promise.whenComplete { result in respond { response(result, render) } } }
        }
    }

    private static func response<Value>(
        _ result: Result<Value, SessionError>,
        _ render: (Value) throws(APIError) -> HTTPResponse
    ) -> HTTPResponse {
        do throws(APIError) {
            switch result {
            case .success(let value): return try render(value)
            case .failure(let error): throw APIError(error)
            }
        } catch {
            return error.response
        }
    }
}

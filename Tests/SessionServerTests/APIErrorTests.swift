import MicroHTTP
import SessionCore
import Testing

@testable import SessionServer

struct APIErrorTests {
    @Test(arguments: [
        (SessionError.Code.invalidUsername, 400), (.invalidTimeout, 400), (.invalidData, 400), (.invalidCursor, 400),
        (.invalidArgument, 400), (.tokenMalformed, 401), (.sessionUnknown, 401), (.sessionExpired, 401),
        (.sessionLimitReached, 409), (.dataTooLarge, 413), (.capacityExceeded, 503),
    ])
    func storeErrorsMapToOneStatusEach(code: SessionError.Code, status: Int) {
        let error = APIError(SessionError(code: code, message: "m"))
        #expect(error.status == status)
        #expect(error.code == code.rawValue)
    }

    @Test func errorResponsesHaveTheSingleShape() {
        let response = APIError.methodNotAllowed(["GET", "PUT"]).response
        #expect(response.status == 405)
        #expect(response.headers.contains { $0.name == "Allow" && $0.value == "GET, PUT" })
        guard case .bytes(let body) = response.body else {
            Issue.record("expected a byte body")
            return
        }
        #expect(
            String(decoding: body, as: UTF8.self)
                == #"{"error":{"code":"method_not_allowed","message":"allowed methods: GET, PUT"}}"#
        )
    }

    @Test func apiTokenComparison() throws {
        let token = try APIToken("0123456789abcdef-secret")
        #expect(token.matches(Array("0123456789abcdef-secret".utf8)))
        #expect(!token.matches(Array("0123456789abcdef-secreT".utf8)))
        #expect(!token.matches(Array("0123456789abcdef-secret2".utf8)))
        #expect(!token.matches(Array("0123456789abcdef".utf8)))
        #expect(!token.matches([]))
        #expect(!"\(token)".contains("secret"))
        #expect(throws: APIError.self) { try APIToken("short") }
        #expect(throws: APIError.self) { try APIToken("0123456789abcdef with space") }
    }
}

import HTTPTestSupport
import Testing

@testable import MicroHTTP

struct AcceptEncodingTests {
    @Test(arguments: [
        ("gzip", true),
        ("GZIP", true),
        ("x-gzip", true),
        ("deflate, gzip;q=1.0, *;q=0.5", true),
        ("gzip;q=0", false),
        ("gzip; q=0.0", false),
        ("gzip;q=0.001", true),
        ("*", true),
        ("*;q=0", false),
        ("gzip;q=0, *", false),
        ("br, *;q=0.1", true),
        ("identity", false),
        ("br, deflate", false),
        ("", false),
        ("gzip;q=abc", false),
        ("  gzip  ;  q=1 ", true),
    ])
    func allowsGzip(header: String, expected: Bool) {
        #expect(AcceptEncoding.allowsGzip(header) == expected)
    }
}

struct GzipTests {
    @Test func roundTripsThroughGunzip() throws {
        let text = Array(compressibleText.utf8)
        let compressed = try Gzip.compress(text)
        #expect(compressed.prefix(2) == [0x1f, 0x8b])
        #expect(compressed.count < text.count / 4)
        #expect(try gunzip(compressed) == text)
        #expect(try gunzip(try Gzip.compress(text, level: 9)) == text)
        #expect(try gunzip(try Gzip.compress([])) == [])
    }

    @Test func incompressibleInputStillFits() throws {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<30_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(try gunzip(try Gzip.compress(random)) == random)
    }

    @Test func encoderCanBeReused() throws {
        let encoder = try GzipEncoder(level: 1)
        let first = try encoder.compress(Array("first".utf8))
        let second = try encoder.compress(Array("second".utf8))
        #expect(try gunzip(first) == Array("first".utf8))
        #expect(try gunzip(second) == Array("second".utf8))
    }

    @Test func invalidLevelThrows() {
        #expect(throws: MicroHTTPError.self) { try Gzip.compress([1, 2, 3], level: 12) }
    }
}

struct HTTPServerErrorTests {
    @Test func theDefaultRenderingIsPlainTextWithTheErrorsStatus() throws {
        let response = HTTPServerError.plainTextResponse(.bodyTooLarge(limit: 1000))
        #expect(response.status == 413)
        #expect(response.headers.first { $0.name == "Content-Type" }?.value == "text/plain; charset=utf-8")
        guard case .bytes(let body) = response.body else {
            Issue.record("expected bytes")
            return
        }
        #expect(String(decoding: body, as: UTF8.self) == "body_too_large: The request body exceeds 1000 bytes.\n")
        #expect(HTTPServerError.shuttingDown.status == 503)
        #expect(HTTPServerError.internalError("x").status == 500)
    }
}

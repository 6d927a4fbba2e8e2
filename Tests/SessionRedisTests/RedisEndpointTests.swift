import Testing

@testable import SessionRedis

struct RedisEndpointTests {
    @Test func parsesHostPortCredentialsAndDatabase() throws {
        let full = try RedisEndpoint(url: "redis://sessiond:s3cret@10.0.0.5:6380/2")
        #expect(full == RedisEndpoint(host: "10.0.0.5", port: 6380, user: "sessiond", password: "s3cret", database: 2))
        #expect(try RedisEndpoint(url: "redis://localhost") == RedisEndpoint(host: "localhost"))
        #expect(try RedisEndpoint(url: "redis://:pw@h:1/") == RedisEndpoint(host: "h", port: 1, password: "pw"))
        #expect(try RedisEndpoint(url: "redis://pw@h") == RedisEndpoint(host: "h", password: "pw"))
        #expect(try RedisEndpoint(url: "redis://[::1]:7000/3") == RedisEndpoint(host: "::1", port: 7000, database: 3))
        #expect(try RedisEndpoint(url: "redis://u:p%40ss%3Aw@h").password == "p@ss:w")
    }

    @Test(arguments: [
        "http://h", "redis://", "redis://h:0", "redis://h:70000", "redis://h:x", "redis://h/-1", "redis://h/x",
        "redis://[::1", "redis://[::1]x", "redis://u:%zz@h", "redis://u:%c3@h",
    ])
    func refusesWhatItCannotUse(url: String) {
        #expect(throws: RedisEndpointError.self) { try RedisEndpoint(url: url) }
    }

    @Test func theDescriptionNeverShowsThePassword() throws {
        let endpoint = try RedisEndpoint(url: "redis://sessiond:s3cret@h:1/0")
        #expect(endpoint.description == "redis://sessiond:***@h:1/0")
        #expect(!"\(endpoint)".contains("s3cret"))
        #expect(try RedisEndpoint(url: "redis://[::1]:2").description == "redis://[::1]:2/0")
    }
}

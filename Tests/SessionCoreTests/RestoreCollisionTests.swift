import Testing

@testable import SessionCore

/// Sessions read back from storage keep their ids and tokens, so their index keys (the first 32
/// bits of the id and of the token hash) may collide with another session's; none may be lost.
struct RestoreCollisionTests {
    /// Two random tokens whose hashes share the 32 bits the token index keeps (bytes 4–7 of the
    /// hash): found by a birthday search, ~77,000 hashes on average.
    private static func tokensSharingTheirIndexKey() -> (SessionToken, SessionToken) {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var generator = SystemRandomNumberGenerator()
        var seen: [UInt32: SessionToken] = [:]
        while true {
            var bytes = Array("usm_".utf8)
            for _ in 0..<43 { bytes.append(alphabet.randomElement(using: &generator)!) }
            let token = SessionToken(rawValue: String(decoding: bytes, as: UTF8.self))
            let key = UInt32(truncatingIfNeeded: TokenHash(of: token).w0 >> 32)
            if let other = seen[key] { return (other, token) }
            seen[key] = token
        }
    }

    private static func record(_ token: SessionToken, id: SessionID, username: String, now: Int64) -> SessionRecord {
        SessionRecord(
            id: id,
            tokenHash: TokenHash(of: token),
            username: username,
            createdAt: now - 1000,
            lastSeenAt: now - 1000,
            expiresAt: now + 3_600_000,
            idleTimeout: 600_000,
            data: Array(#"{"u":"\#(username)"}"#.utf8)
        )
    }

    /// The id index keeps a restored id whose 32-bit key is taken aside, by its first 64 bits. A second
    /// such id with the same first 64 bits cannot be kept there: that session is skipped, as a token
    /// stored twice is, rather than restored without a way to find it by id.
    @Test func anIDThatCannotBeIndexedIsSkipped() throws {
        let harness = Harness(.init(idleTimeout: .seconds(600), maxLifetime: .seconds(7200), shardCount: 1))
        let now = harness.clock.nowMilliseconds()
        var bytes = [UInt8](repeating: 7, count: 16)
        bytes[0] = 0
        let indexed = try #require(bytes.withUnsafeBytes { SessionID(bytes: $0) })
        bytes[1] = 8  // same index key (bytes 4-7), other first 64 bits: kept aside
        let spilled = try #require(bytes.withUnsafeBytes { SessionID(bytes: $0) })
        bytes[13] = 10  // same first 64 bits as `spilled`, other id
        let unindexable = try #require(bytes.withUnsafeBytes { SessionID(bytes: $0) })
        let tokens = ["A", "B", "C"].map { SessionToken(rawValue: "usm_" + String(repeating: $0, count: 43)) }
        let report = harness.store.restore([
            Self.record(tokens[0], id: indexed, username: "ada", now: now),
            Self.record(tokens[1], id: spilled, username: "bob", now: now),
            Self.record(tokens[2], id: unindexable, username: "eve", now: now),
        ])
        #expect(report.restored == 2)
        #expect(report.skipped == 1)
        #expect(harness.store.validate(token: tokens[2].rawValue) == .unknown)
        #expect(harness.store.session(id: indexed)?.username == "ada")
        #expect(harness.store.session(id: spilled)?.username == "bob")
        #expect(harness.store.session(id: unindexable) == nil)
        #expect(harness.store.invariantViolations() == [])
    }

    @Test("sessions whose ids and token hashes share their index keys are all restored and usable")
    func collidingSessionsAreRestored() throws {
        // One token shard and one shard: colliding keys meet in the same indexes.
        let harness = Harness(.init(idleTimeout: .seconds(600), maxLifetime: .seconds(7200), shardCount: 1))
        let now = harness.clock.nowMilliseconds()
        let (first, second) = Self.tokensSharingTheirIndexKey()
        #expect(TokenHash(of: first) != TokenHash(of: second))
        // Ids that share bytes 4-7 (the id index key) but differ elsewhere; byte 0 is the shard hint.
        var firstBytes = [UInt8](repeating: 7, count: 16)
        firstBytes[0] = 0
        let firstID = try #require(firstBytes.withUnsafeBytes { SessionID(bytes: $0) })
        var otherBytes = firstBytes
        otherBytes[1] = 8
        otherBytes[12] = 9
        let secondID = try #require(otherBytes.withUnsafeBytes { SessionID(bytes: $0) })
        let report = harness.store.restore([
            Self.record(first, id: firstID, username: "ada", now: now),
            Self.record(second, id: secondID, username: "bob", now: now),
            // The same token or id twice is still refused.
            Self.record(
                first,
                id: try #require([UInt8](repeating: 0, count: 16).withUnsafeBytes { SessionID(bytes: $0) }),
                username: "eve",
                now: now
            ),
            Self.record(
                SessionToken(rawValue: "usm_" + String(repeating: "Q", count: 43)),
                id: secondID,
                username: "eve",
                now: now
            ),
        ])
        #expect(report.restored == 2)
        #expect(report.skipped == 2)
        #expect(harness.store.invariantViolations() == [])
        for (token, name) in [(first, "ada"), (second, "bob")] {
            guard case .valid(let session) = harness.store.validate(token: token.rawValue) else {
                Issue.record("\(name)'s restored session does not validate")
                continue
            }
            #expect(session.username == name)
            #expect(try harness.store.details(token: token.rawValue).username == name)
        }
        #expect(harness.store.session(id: firstID)?.username == "ada")
        #expect(harness.store.session(id: secondID)?.username == "bob")
        // Either can end first; the other stays reachable by token and by id.
        #expect(harness.store.revoke(id: firstID)?.username == "ada")
        #expect(harness.store.validate(token: first.rawValue) == .unknown)
        guard case .valid = harness.store.validate(token: second.rawValue) else {
            Issue.record("the second session was lost with the first")
            return
        }
        #expect(harness.store.session(id: secondID)?.username == "bob")
        let rotated = try harness.store.rotate(token: second.rawValue)
        #expect(harness.store.validate(token: second.rawValue) == .unknown)
        guard case .valid = harness.store.validate(token: rotated.token.rawValue) else {
            Issue.record("the rotated session does not validate")
            return
        }
        try harness.store.logout(token: rotated.token.rawValue)
        #expect(harness.store.invariantViolations() == [])
        #expect(harness.store.statistics().activeSessions == 0)
    }
}

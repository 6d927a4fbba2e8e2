import Synchronization
import Testing

@testable import SessionCore

struct UserIndexTests {
    @Test func rejectPolicyRefusesTheSessionBeyondTheCapAndStoresNothing() throws {
        let harness = Harness(.init(maxSessionsPerUser: 2, sessionLimitPolicy: .reject))
        _ = try harness.store.create(username: "ada")
        _ = try harness.store.create(username: "ada")
        #expect(throws: SessionError.self) { try harness.store.create(username: "ada") }
        #expect(harness.store.statistics().activeSessions == 2)
        #expect(harness.recorder.createdCount == 2)
        _ = try harness.store.create(username: "bob")  // other users are unaffected
    }

    @Test func usernamesAreComparedByteForByteEvenOnOneShard() throws {
        // "Kate" and "\u{212A}ate" (KELVIN SIGN) are canonically equivalent, so String == holds.
        // With one shard they always meet in one user index; they must still be two users.
        let kelvin = "\u{212A}ate"
        #expect(kelvin == "Kate")
        let harness = Harness(.init(maxSessionsPerUser: 1, sessionLimitPolicy: .reject, shardCount: 1))
        _ = try harness.store.create(username: "Kate")
        let other = try harness.store.create(username: kelvin)  // not over Kate's cap of 1
        #expect(Array(other.session.username.utf8) == Array(kelvin.utf8))
        #expect(try harness.store.users().items.count == 2)
        #expect(try harness.store.sessions(username: kelvin).items.map(\.id) == [other.session.id])
        #expect(harness.store.revokeAll(username: "Kate") == 1)
        #expect(harness.store.validate(token: other.token.rawValue).session != nil)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func evictPolicyEndsTheOldestSession() throws {
        let harness = Harness(.init(maxSessionsPerUser: 2, sessionLimitPolicy: .evictOldest))
        let first = try harness.store.create(username: "ada")
        harness.advance(seconds: 1)
        let second = try harness.store.create(username: "ada")
        harness.advance(seconds: 1)
        let third = try harness.store.create(username: "ada")
        #expect(harness.store.validate(token: first.token.rawValue) == .unknown)
        #expect(harness.store.validate(token: second.token.rawValue).session != nil)
        #expect(harness.store.validate(token: third.token.rawValue).session != nil)
        #expect(harness.recorder.endReasons == [.evicted])
        #expect(harness.recorder.all.last(where: { $0.kind == .ended(.evicted) })?.id == first.session.id)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func loggedUsersAreDistinctWithCounts() throws {
        let harness = Harness()
        for _ in 0..<3 { _ = try harness.store.create(username: "ada") }
        _ = try harness.store.create(username: "bob")
        var users: [LoggedInUser] = []
        var cursor: String?
        repeat {
            let page = try harness.store.users(limit: 1, cursor: cursor)
            #expect(page.items.count <= 1)
            users += page.items
            cursor = page.nextCursor
        } while cursor != nil
        #expect(
            Set(users) == [
                LoggedInUser(username: "ada", sessionCount: 3), LoggedInUser(username: "bob", sessionCount: 1),
            ]
        )
        #expect(harness.store.statistics().realtimeUsers == 2)
    }

    @Test func sessionPagesCoverEverySessionExactlyOnce() throws {
        let harness = Harness()
        var ids = Set<SessionID>()
        for index in 0..<250 { ids.insert(try harness.store.create(username: "u\(index % 40)").session.id) }
        var seen: [SessionID] = []
        var cursor: String?
        repeat {
            let page = try harness.store.sessions(limit: 7, cursor: cursor)
            seen += page.items.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen.count == 250)
        #expect(Set(seen) == ids)
    }

    @Test func aUsersSessionsComeOldestFirstAndPaginate() throws {
        let harness = Harness()
        var ids: [SessionID] = []
        for _ in 0..<5 {
            ids.append(try harness.store.create(username: "ada").session.id)
            harness.advance(seconds: 1)
        }
        _ = try harness.store.create(username: "bob")
        let first = try harness.store.sessions(username: "ada", limit: 3)
        #expect(first.items.map(\.id) == Array(ids[0..<3]))
        let second = try harness.store.sessions(username: "ada", limit: 3, cursor: first.nextCursor)
        #expect(second.items.map(\.id) == Array(ids[3..<5]))
        #expect(second.nextCursor == nil)
        #expect(try harness.store.sessions(username: "nobody").items.isEmpty)
    }

    @Test(arguments: ["", "x", "s99.0", "s0", "s0.-1", "u0.0", "o-1"])
    func foreignCursorsAreRefused(cursor: String) {
        let harness = Harness()
        #expect(throws: SessionError.self) { try harness.store.sessions(limit: 10, cursor: cursor) }
    }

    @Test func limitsOutsideTheRangeAreRefused() {
        let harness = Harness()
        #expect(throws: SessionError.self) { try harness.store.users(limit: 0) }
        #expect(throws: SessionError.self) { try harness.store.sessions(limit: SessionStore.maximumPageSize + 1) }
    }

    @Test func revokeAllEndsEverySessionOfOneUserOnly() throws {
        let harness = Harness()
        for _ in 0..<4 { _ = try harness.store.create(username: "ada") }
        let bob = try harness.store.create(username: "bob")
        #expect(harness.store.revokeAll(username: "ada") == 4)
        #expect(harness.store.revokeAll(username: "ada") == 0)
        #expect(harness.store.validate(token: bob.token.rawValue).session != nil)
        #expect(harness.recorder.endReasons == Array(repeating: .revoked, count: 4))
        #expect(harness.store.statistics().realtimeUsers == 1)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func usersSeenCountsDistinctUsersPerWindow() throws {
        let harness = Harness()
        let ada = try harness.store.create(username: "ada").token.rawValue
        let bob = try harness.store.create(username: "bob").token.rawValue
        for _ in 0..<10 { _ = harness.store.validate(token: ada) }
        var stats = harness.store.statistics()
        #expect((stats.usersSeenLastMinute, stats.usersSeenLast5Minutes, stats.usersSeenLast15Minutes) == (2, 2, 2))
        harness.advance(seconds: 120)
        _ = harness.store.validate(token: ada)
        stats = harness.store.statistics()
        #expect((stats.usersSeenLastMinute, stats.usersSeenLast5Minutes, stats.usersSeenLast15Minutes) == (1, 2, 2))
        harness.advance(seconds: 240)  // bob last seen 360 s ago
        stats = harness.store.statistics()
        #expect((stats.usersSeenLastMinute, stats.usersSeenLast5Minutes, stats.usersSeenLast15Minutes) == (0, 1, 2))
        _ = bob
    }

    @Test func aUserWhoLogsOutAndBackInIsCountedOnce() throws {
        let harness = Harness()
        let token = try harness.store.create(username: "ada").token.rawValue
        try harness.store.logout(token: token)
        harness.advance(seconds: 30)
        _ = try harness.store.create(username: "ada")
        let stats = harness.store.statistics()
        #expect(stats.usersSeenLastMinute == 1)
        #expect(stats.usersSeenLast15Minutes == 1)
        #expect(stats.realtimeUsers == 1)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func usersWithoutSessionsAreForgottenAfterTheWindow() throws {
        let harness = Harness()
        try harness.store.logout(token: try harness.store.create(username: "ada").token.rawValue)
        #expect(try harness.store.users().items.isEmpty)
        harness.advance(seconds: 901)
        harness.store.reapExpired()
        let forgotten = harness.store.shards.allSatisfy { shard in shard.state.withLock { $0.userIndex.isEmpty } }
        #expect(forgotten)
        #expect(harness.store.statistics().usersSeenLast15Minutes == 0)
    }
}

/// Edge cases of the user index under the per-user cap and the users-seen window.
struct UserIndexEdgeCaseTests {
    /// With a cap of one, re-login after the user's last sighting left the 15-minute window evicted
    /// the only session and freed the user record the new session was then linked into.
    @Test func evictingTheLastSessionKeepsTheUserRecord() throws {
        let harness = Harness(.init(maxSessionsPerUser: 1, sessionLimitPolicy: .evictOldest))
        _ = try harness.store.create(username: "ada")
        harness.advance(seconds: 1000)
        let second = try harness.store.create(username: "ada")
        #expect(second.session.username == "ada")
        // Another user in any shard must not take over ada's record.
        var others: [CreatedSession] = []
        for index in 0..<64 { others.append(try harness.store.create(username: "other\(index)")) }
        #expect(harness.store.validate(token: second.token.rawValue).session?.username == "ada")
        #expect(try harness.store.sessions(username: "ada").items.map(\.id) == [second.session.id])
        #expect(harness.store.invariantViolations() == [])
        #expect(harness.store.revokeAll(username: "ada") == 1)
        #expect(others.allSatisfy { harness.store.validate(token: $0.token.rawValue).session != nil })
        #expect(harness.store.invariantViolations() == [])
    }

    @Test func usersSeenNeverMovesBackwards() {
        var window = UsersSeenWindow()
        var last = window.see(previous: UsersSeenWindow.never, now: 100)
        last = window.see(previous: last, now: 101)
        last = window.see(previous: last, now: 100)  // a caller that read the clock earlier
        #expect(last == 101)
        #expect(window.count(now: 101, windows: [60, 300, 900]) == [1, 1, 1])
    }

    @Test func nonPositiveBatchSizesStillFinish() throws {
        let harness = Harness(.init(idleTimeout: .seconds(2)))
        for index in 0..<10 { _ = try harness.store.create(username: "u\(index)") }
        harness.advance(seconds: 3)
        #expect(harness.store.reapExpired(batchSize: 0) == 10)
        for index in 0..<10 { _ = try harness.store.create(username: "u\(index)") }
        #expect(harness.store.deleteAll(batchSize: -5) == 10)
    }

    /// A create/logout loop re-uses the same expiry buckets: the bucket heap must not grow with it.
    @Test func churnDoesNotGrowTheBucketHeap() throws {
        let harness = Harness(.init(idleTimeout: .seconds(600)))
        for _ in 0..<5000 {
            let token = try harness.store.create(username: "churn").token.rawValue
            try harness.store.logout(token: token)
        }
        let heapSize = harness.store.shards.map { $0.state.withLock { $0.scheduledBucketCount } }.reduce(0, +)
        #expect(heapSize <= 2)
        #expect(harness.store.invariantViolations() == [])
    }
}

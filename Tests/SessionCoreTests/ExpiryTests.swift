import Testing

@testable import SessionCore

struct ExpiryTests {
    @Test func reaperEndsIdleAndAbsoluteSessionsWithTheirReasons() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10), maxLifetime: .seconds(30)))
        _ = try harness.store.create(username: "idle")
        let busy = try harness.store.create(username: "busy").token.rawValue
        for _ in 0..<4 {
            harness.advance(seconds: 8)
            _ = harness.store.validate(token: busy)
            harness.store.reapExpired()
        }
        let stats = harness.store.statistics()
        #expect(stats.ended[.idleTimeout] == 1)
        #expect(stats.ended[.absoluteTimeout] == 1)
        #expect(stats.activeSessions == 0)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func reaperNeverEndsASessionEarly() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10)))
        let token = try harness.store.create(username: "ada").token.rawValue
        harness.advance(seconds: 9.999)
        #expect(harness.store.reapExpired() == 0)
        harness.advance(seconds: 0.001)
        #expect(harness.store.reapExpired() <= 1)  // due within one 250 ms bucket
        harness.advance(seconds: 0.25)
        harness.store.reapExpired()
        #expect(harness.store.validate(token: token) == .expired(.idleTimeout))
    }

    @Test func slidSessionsAreRescheduledNotEnded() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10)))
        let token = try harness.store.create(username: "ada").token.rawValue
        for _ in 0..<20 {
            harness.advance(seconds: 5)
            #expect(harness.store.validate(token: token).session != nil)
            #expect(harness.store.reapExpired() == 0)
            #expect(harness.store.invariantViolations().isEmpty)
        }
    }

    @Test func massExpiryIsRemovedInBoundedBatches() throws {
        let harness = Harness(.init(idleTimeout: .seconds(60)))
        for index in 0..<20_000 { _ = try harness.store.create(username: "user\(index % 2000)") }
        harness.advance(seconds: 61)
        // Batches of 100 per lock hold still remove everything in one call.
        #expect(harness.store.reapExpired(batchSize: 100) == 20_000)
        let stats = harness.store.statistics()
        #expect(stats.activeSessions == 0)
        #expect(stats.realtimeUsers == 0)
        #expect(stats.ended[.idleTimeout] == 20_000)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func deleteAllEmptiesTheStore() throws {
        let harness = Harness()
        var tokens: [String] = []
        for index in 0..<3000 { tokens.append(try harness.store.create(username: "u\(index % 300)").token.rawValue) }
        #expect(harness.store.deleteAll(batchSize: 128) == 3000)
        #expect(tokens.allSatisfy { harness.store.validate(token: $0) == .unknown })
        #expect(try harness.store.users().items.isEmpty)
        #expect(harness.store.statistics().activeSessions == 0)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func freedSlotsAreReusedWithoutConfusingOldTokensOrIds() throws {
        let harness = Harness()
        let old = try harness.store.create(username: "ada")
        try harness.store.logout(token: old.token.rawValue)
        let new = try harness.store.create(username: "ada")
        #expect(harness.store.validate(token: old.token.rawValue) == .unknown)
        #expect(harness.store.session(id: old.session.id) == nil)
        #expect(harness.store.session(id: new.session.id) != nil)
    }
}

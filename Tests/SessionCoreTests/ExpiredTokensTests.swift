import Dispatch
import Synchronization
import Testing

@testable import SessionCore

struct ExpiredTokensTests {
    private func hash(_ seed: UInt64) -> TokenHash {
        TokenHash(w0: seed &* 0x9E37_79B9_7F4A_7C15, w1: seed, w2: 0, w3: 0)
    }

    @Test func aTokenIsRememberedForTheRetentionOnly() {
        var tokens = ExpiredTokens(retention: 1000, capacity: 10)
        tokens.insert(hash(1), reason: .idleTimeout, endedAt: 5000, now: 5000)
        #expect(tokens.reason(for: hash(1), now: 5999) == .idleTimeout)
        #expect(tokens.reason(for: hash(1), now: 6000) == nil)
        #expect(tokens.reason(for: hash(2), now: 5000) == nil)
        tokens.prune(now: 6000)
        #expect(tokens.count == 0)
    }

    @Test func theFullHashMustMatchNotOnlyTheIndexWord() {
        var tokens = ExpiredTokens(retention: 1000, capacity: 10)
        let stored = hash(1)
        tokens.insert(stored, reason: .absoluteTimeout, endedAt: 0, now: 0)
        let sameFirstWord = TokenHash(w0: stored.w0, w1: stored.w1 &+ 1, w2: 0, w3: 0)
        #expect(tokens.reason(for: sameFirstWord, now: 1) == nil)
        #expect(tokens.reason(for: stored, now: 1) == .absoluteTimeout)
    }

    @Test func theOldestAreForgottenBeyondTheCapacity() {
        var tokens = ExpiredTokens(retention: 1_000_000, capacity: 3)
        for seed in 1...5 { tokens.insert(hash(UInt64(seed)), reason: .idleTimeout, endedAt: Int64(seed), now: 10) }
        #expect(tokens.count == 3)
        #expect(tokens.reason(for: hash(1), now: 10) == nil && tokens.reason(for: hash(2), now: 10) == nil)
        #expect(tokens.reason(for: hash(5), now: 10) == .idleTimeout)
    }

    @Test func anEndOlderThanTheRetentionIsNotStored() {
        var tokens = ExpiredTokens(retention: 1000, capacity: 10)
        tokens.insert(hash(1), reason: .idleTimeout, endedAt: 0, now: 1000)
        #expect(tokens.count == 0)
        var off = ExpiredTokens(retention: 0, capacity: 10)
        off.insert(hash(1), reason: .idleTimeout, endedAt: 0, now: 0)
        #expect(off.count == 0)
    }
}

struct ExpiredAnswerTests {
    @Test func aSessionEndedByTimeoutAnswersExpiredBeforeAndAfterTheReaper() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10), maxLifetime: .seconds(100)))
        let reaped = try harness.store.create(username: "a").token.rawValue
        let found = try harness.store.create(username: "b").token.rawValue
        let loggedOut = try harness.store.create(username: "c").token.rawValue
        try harness.store.logout(token: loggedOut)
        harness.advance(seconds: 10.5)
        harness.store.reapExpired()
        #expect(harness.store.validate(token: reaped) == .expired(.idleTimeout))
        #expect(harness.store.validate(token: reaped) == .expired(.idleTimeout))
        #expect(harness.store.validate(token: loggedOut) == .unknown)
        #expect(throws: SessionStore.expiredError(.idleTimeout)) { try harness.store.data(token: reaped) }
        #expect(throws: SessionStore.expiredError(.idleTimeout)) { try harness.store.rotate(token: reaped) }
        #expect(throws: SessionStore.unknownError) { try harness.store.logout(token: loggedOut) }
        _ = found
        #expect(harness.store.statistics().validationsExpired == 2)
    }

    @Test func aRevokedOrRotatedTokenStaysUnknown() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10)))
        let revoked = try harness.store.create(username: "a")
        harness.store.revoke(id: revoked.session.id)
        let rotated = try harness.store.create(username: "b").token.rawValue
        _ = try harness.store.rotate(token: rotated)
        harness.advance(seconds: 20)
        harness.store.reapExpired()
        #expect(harness.store.validate(token: revoked.token.rawValue) == .unknown)
        #expect(harness.store.validate(token: rotated) == .unknown)
    }

    @Test func expiredTokensAreForgottenAfterTheConfiguredRetention() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10), expiredTokenRetention: .seconds(60)))
        let token = try harness.store.create(username: "a").token.rawValue
        harness.advance(seconds: 11)
        harness.store.reapExpired()
        #expect(harness.store.validate(token: token) == .expired(.idleTimeout))
        harness.advance(seconds: 60)
        harness.store.reapExpired()
        #expect(harness.store.validate(token: token) == .unknown)
    }

    @Test func aTokenValidatedWhileTheReaperRemovesItsSessionAnswersExpired() throws {
        // The reaper removes a batch under a shard's lock and unindexes it afterwards; a validation in
        // between must find the tombstone, not answer "unknown".
        let harness = Harness(.init(idleTimeout: .seconds(10)))
        let tokens = try (0..<20_000).map { try harness.store.create(username: "u\($0 % 500)").token.rawValue }
        harness.advance(seconds: 11)
        let answers = Mutex<[SessionValidation: Int]>([:])
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            if worker == 0 {
                harness.store.reapExpired(batchSize: 4096)
                return
            }
            var seen: [SessionValidation: Int] = [:]
            for token in tokens.reversed() {
                seen[harness.store.validate(token: token, refresh: false), default: 0] += 1
            }
            answers.withLock { $0 = seen }
        }
        let seen = answers.withLock { $0 }
        #expect(seen == [.expired(.idleTimeout): tokens.count])
    }
}

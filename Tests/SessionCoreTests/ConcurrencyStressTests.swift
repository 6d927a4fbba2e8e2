import Synchronization
import Testing

@testable import SessionCore

#if canImport(Glibc)
import Glibc
#endif

struct ConcurrencyStressTests {
    /// Many threads create, validate, refresh, rotate, write data, log out and revoke while the
    /// reaper runs and time moves; afterwards every invariant holds and every count equals a recount.
    @Test func storeStaysConsistentUnderConcurrentLoad() async throws {
        let harness = Harness(.init(idleTimeout: .seconds(5), maxLifetime: .seconds(20), maxSessionsPerUser: 8))
        let store = harness.store
        let clock = harness.clock
        let operations = SharedCounter()
        let workers = 8
        let iterations = 3000
        // Kept alive by worker 0 until its absolute lifetime ends it.
        let keeper = try store.create(username: "keeper").token.rawValue

        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var mine: [String] = []
                    var random = SystemRandomNumberGenerator()
                    for step in 0..<iterations {
                        let roll = Int.random(in: 0..<100, using: &random)
                        if roll < 30 || mine.isEmpty {
                            if let created = try? store.create(
                                username: "user\(Int.random(in: 0..<50, using: &random))"
                            ) {
                                mine.append(created.token.rawValue)
                            }
                        } else {
                            let index = Int.random(in: 0..<mine.count, using: &random)
                            let token = mine[index]
                            switch roll {
                            case 30..<60: _ = store.validate(token: token)
                            case 60..<70: _ = store.validate(token: token, refresh: false)
                            case 70..<75:
                                if let rotated = try? store.rotate(token: token) {
                                    mine[index] = rotated.token.rawValue
                                }
                            case 75..<82: _ = try? store.setData(token: token, data: Array("{\"n\":\(step)}".utf8))
                            case 82..<90:
                                _ = try? store.logout(token: token)
                                mine.remove(at: index)
                            case 90..<93:
                                if let session = try? store.details(token: token) { store.revoke(id: session.id) }
                            case 93..<95: store.revokeAll(username: "user\(Int.random(in: 0..<50, using: &random))")
                            default: _ = try? store.users(limit: 20)
                            }
                        }
                        operations.increment()
                        if worker == 0 {
                            _ = store.validate(token: keeper)
                            if step % 50 == 0 { clock.advance(by: .milliseconds(700)) }
                        }
                    }
                }
            }
            group.addTask {
                while operations.value < workers * iterations {
                    store.reapExpired(batchSize: 64)
                    await Task.yield()
                }
            }
        }
        store.reapExpired()
        #expect(store.invariantViolations() == [])
        let stats = store.statistics()
        let endedTotal = stats.ended.values.reduce(0, +)
        #expect(stats.created - endedTotal == stats.activeSessions)
        // The load really exercised every way a session ends.
        for reason in SessionEndReason.allCases { #expect(stats.ended[reason, default: 0] > 0, "\(reason)") }
        #expect(harness.recorder.createdCount == stats.created)
        #expect(harness.recorder.endReasons.count == endedTotal)
        var listed = 0
        var cursor: String?
        repeat {
            let page = try store.sessions(limit: 500, cursor: cursor)
            listed += page.items.count
            cursor = page.nextCursor
        } while cursor != nil
        #expect(listed == stats.activeSessions)
        let users = try store.users(limit: 1000).items
        #expect(users.count == stats.realtimeUsers)
        #expect(users.map(\.sessionCount).reduce(0, +) == stats.activeSessions)
        #expect(users.allSatisfy { $0.sessionCount <= 8 })
    }

    /// Concurrent logins of one user with a cap of one session: each login evicts the session the
    /// other login has just created. Every session's `created` must still reach observers before its
    /// `ended`. An observer that dawdles over `ended` events (as a subscriber fan-out may) holds a
    /// login between publishing its eviction and publishing its `created`: the other login ends the
    /// new session meanwhile, and its `ended` must wait for that `created` (without that wait, most
    /// sessions are reported ended before they are created).
    @Test func createdComesBeforeEndedWhenConcurrentLoginsEvict() async throws {
        let harness = Harness(.init(maxSessionsPerUser: 1, sessionLimitPolicy: .evictOldest))
        harness.store.events.addObserver { event in
            if case .ended = event.kind { usleep(100) }
        }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<250 { _ = try? harness.store.create(username: "ada") }
                }
            }
        }
        var created: [SessionID: Int] = [:]
        var ended: [SessionID: Int] = [:]
        for (position, event) in harness.recorder.all.enumerated() {
            switch event.kind {
            case .created:
                #expect(created[event.id] == nil, "created twice")
                created[event.id] = position
            case .ended(let reason):
                #expect(reason == .evicted)
                #expect(ended[event.id] == nil, "ended twice")
                ended[event.id] = position
            }
        }
        #expect(created.count == 1000)
        #expect(ended.count == 999)
        let endedBeforeCreated = ended.count { id, position in (created[id] ?? Int.max) > position }
        #expect(endedBeforeCreated == 0, "sessions whose ended came before their created")
        #expect(harness.store.invariantViolations() == [])
    }
}

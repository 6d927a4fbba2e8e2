import Testing

@testable import SessionCore

/// The Node library's own test scenario, translated: two users log in, one logs out, a 2-second
/// timeout expires a third, a refreshed fourth survives past its first deadline, data round-trips,
/// delete-all empties everything.
struct NodeScenarioTests {
    @Test func nodeLibraryScenario() throws {
        let harness = Harness(.init(idleTimeout: .seconds(2)))
        let store = harness.store

        let alice = try store.create(username: "alice")
        let bob = try store.create(username: "bob")
        #expect(Set(try store.users().items.map(\.username)) == ["alice", "bob"])

        try store.logout(token: bob.token.rawValue)
        #expect(store.validate(token: bob.token.rawValue) == .unknown)
        #expect(try store.users().items.map(\.username) == ["alice"])

        let carol = try store.create(username: "carol")
        let dave = try store.create(username: "dave")
        try store.setData(token: dave.token.rawValue, data: Array(json: #"{"role":"admin"}"#))

        harness.advance(seconds: 1.5)
        _ = store.refresh(token: dave.token.rawValue)
        _ = store.refresh(token: alice.token.rawValue)
        harness.advance(seconds: 1.0)  // carol's 2 s passed; dave's first deadline too
        store.reapExpired()

        #expect(store.validate(token: carol.token.rawValue) == .expired(.idleTimeout))
        let daveSession = try #require(store.validate(token: dave.token.rawValue).session)
        #expect(daveSession.data == Array(json: #"{"role":"admin"}"#))
        #expect(try store.data(token: dave.token.rawValue) == Array(json: #"{"role":"admin"}"#))

        #expect(harness.recorder.endReasons == [.logout, .idleTimeout])
        #expect(store.deleteAll() == 2)
        #expect(try store.users().items.isEmpty)
        #expect(store.statistics().activeSessions == 0)
        #expect(store.statistics().created == 4)
        #expect(store.invariantViolations().isEmpty)
    }
}

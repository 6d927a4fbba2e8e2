// sessiond — for now a demonstration of SessionCore: it replays the Node library's README scenario
// against a real store with the real clock, printing every event, then the statistics.
// (The HTTP service replaces this in the sessiond issue.)
import SessionCore

let store = SessionStore(configuration: .init(idleTimeout: .seconds(2)))
store.events.addObserver { event in
    switch event.kind {
    case .created: print("event created  id=\(event.id) user=\(event.username)")
    case .ended(let reason):
        print("event ended    id=\(event.id) user=\(event.username) reason=\(reason.rawValue) lifetime=\(event.lifetime)")
    }
}

func show(_ label: String) {
    let stats = store.statistics()
    let users = (try? store.users().items.map { "\($0.username)×\($0.sessionCount)" }) ?? []
    print("\(label): active=\(stats.activeSessions) realtimeUsers=\(stats.realtimeUsers) users=\(users)")
}

let alice = try store.create(username: "alice")
let bob = try store.create(username: "bob")
print("alice's token: \(alice.token) (printing a token redacts it)")
show("two users logged in")
try store.logout(token: bob.token.rawValue)
show("bob logged out")
let carol = try store.create(username: "carol", data: Array(#"{"theme":"dark"}"#.utf8))
show("carol logged in with data")
try await Task.sleep(for: .milliseconds(1500))
_ = store.refresh(token: carol.token.rawValue)
print("carol refreshed; alice idle")
try await Task.sleep(for: .milliseconds(1000))
store.reapExpired()
show("2.5 s later")
if case .valid(let session) = store.validate(token: carol.token.rawValue) {
    print("carol still valid until \(session.idleExpiresAt), data \(String(decoding: session.data ?? [], as: UTF8.self))")
}
print("validate alice: \(store.validate(token: alice.token.rawValue))")
print("deleted all: \(store.deleteAll())")
show("end")

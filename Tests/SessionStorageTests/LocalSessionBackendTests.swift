import SessionCore
import Testing

@testable import SessionStorage

/// ``LocalSessionBackend``: what waits for a commit, what is refused while storage cannot write.
struct LocalSessionBackendTests {
    @Test func writesAreAnsweredAfterTheirCommitInCommitMode() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let harness = try StoredHarness(directory: directory.dataDirectory, durability: .commit)
        defer { harness.close() }
        let backend = LocalSessionBackend(store: harness.store, storage: harness.storage)

        guard case .pending(let promise) = backend.create(NewSession(username: "ada")) else {
            Issue.record("a login in commit mode must wait for its commit")
            return
        }
        let created = try promise.wait().get()
        // Reads and validations never wait.
        let token = Array(created.token.rawValue.utf8)
        let validation = token.withUnsafeBufferPointer { backend.validate(token: $0, refresh: true) }
        guard case .completed(.success(.valid)) = validation else {
            Issue.record("validation: \(validation)")
            return
        }
        guard case .completed = backend.session(id: created.session.id) else {
            Issue.record("a read waited")
            return
        }
        // A revocation that finds nothing changes nothing: it is answered at once.
        guard case .completed(.success(nil)) = backend.revoke(id: try #require(SessionID("AAAAAAAAAAAAAAAAAAAAAA")))
        else {
            Issue.record("revoking an unknown id waited for a commit")
            return
        }
        guard case .pending(let revoked) = backend.revoke(id: created.session.id) else {
            Issue.record("a revocation in commit mode must wait for its commit")
            return
        }
        #expect(try revoked.wait().get()?.id == created.session.id)
    }

    @Test func writesAreAnsweredAtOnceInIntervalModeAndInMemory() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let harness = try StoredHarness(directory: directory.dataDirectory, durability: .interval)
        defer { harness.close() }
        for backend in [
            LocalSessionBackend(store: harness.store, storage: harness.storage),
            LocalSessionBackend(store: SessionStore()),
        ] {
            guard case .completed(.success) = backend.create(NewSession(username: "ada")) else {
                Issue.record("a login waited")
                return
            }
        }
    }

    @Test func writesAreRefusedWhileStorageCannotWriteAndChangeNothing() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let harness = try StoredHarness(directory: directory.dataDirectory, durability: .commit)
        defer { harness.close() }
        let backend = LocalSessionBackend(store: harness.store, storage: harness.storage)
        harness.storage.limitFileForTesting(extraPages: 2)
        let big = Array(#"{"x":"\#(String(repeating: "y", count: 12_000))"}"#.utf8)
        for index in 0..<20 { _ = backend.create(NewSession(username: "u\(index)", data: big)) }
        #expect(await harness.commit()?.code == .diskFull)
        let before = harness.store.statistics().activeSessions

        let refused = backend.create(NewSession(username: "late")).wait()
        #expect(refused.failureCode == .storageUnavailable)
        #expect(backend.deleteAll().wait().failureCode == .storageUnavailable)
        #expect(harness.store.statistics().activeSessions == before)
        // Reads keep working.
        guard case .completed(.success(let page)) = backend.sessions(username: nil, limit: 100, cursor: nil) else {
            Issue.record("a read failed while storage cannot write")
            return
        }
        #expect(page.items.count == before)
        harness.storage.limitFileForTesting(extraPages: nil)
    }
}

extension Result where Failure == SessionError {
    fileprivate var failureCode: SessionError.Code? {
        if case .failure(let error) = self { error.code } else { nil }
    }
}

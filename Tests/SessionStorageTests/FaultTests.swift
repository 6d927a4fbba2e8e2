import Dispatch
import Logging
import SessionCore
import Testing

@testable import SessionStorage

#if canImport(Glibc)
import Glibc
#endif

@Suite("SessionStorage faults")
struct FaultTests {
    private func open(_ directory: String) throws(StorageError) -> SessionStorage {
        var logger = Logger(label: "test.storage")
        logger.logLevel = .critical
        return try SessionStorage(configuration: .init(dataDirectory: directory), logger: logger)
    }

    private func code(_ body: () throws(StorageError) -> Void) -> StorageError? {
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }

    @Test("a second opener of a data directory is refused while the first holds it")
    func locked() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = try open(directory.dataDirectory)
        let error = code { () throws(StorageError) in _ = try open(directory.dataDirectory) }
        #expect(error?.code == .directoryLocked)
        #expect(error?.message.contains("pid \(getpid())") == true, "\(String(describing: error))")
        first.close()
        let again = try open(directory.dataDirectory)
        again.close()
    }

    @Test("closing releases the directory even while a forked child still holds the lock file")
    func unlockDespiteForkedChild() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = try open(directory.dataDirectory)
        // A child forked now inherits the lock file's descriptor and keeps it for half a second
        // (as any fork before its exec does); closing ours alone would not drop the flock.
        let child = fork()
        if child == 0 {
            usleep(500_000)
            _exit(0)
        }
        #expect(child > 0)
        first.close()
        let again = code { () throws(StorageError) in try open(directory.dataDirectory).close() }
        #expect(again == nil, "\(String(describing: again))")
        var status: Int32 = 0
        _ = waitpid(child, &status, 0)
    }

    @Test("a missing directory is created; one under a missing parent is a clear error")
    func missing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let created = try open(directory.path + "/fresh")
        created.close()
        var info = stat()
        #expect(stat(directory.path + "/fresh", &info) == 0 && info.st_mode & 0o777 == 0o700)
        let error = code { () throws(StorageError) in _ = try open(directory.path + "/no/such/dir") }
        #expect(error?.code == .directoryMissing)
        #expect(error?.message.contains("/no/such/dir") == true)
    }

    @Test("a data directory that is a regular file is refused")
    func notADirectory() {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        directory.write(Array("x".utf8), to: "file")
        let error = code { () throws(StorageError) in _ = try open(directory.path + "/file") }
        #expect(error?.code == .directoryMissing)
    }

    @Test("a corrupt database file is refused with corrupt_database and left untouched")
    func corrupt() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        _ = mkdir(directory.dataDirectory, 0o700)
        let garbage = Array(repeating: Array("this is not an SQLite database\n".utf8), count: 200).flatMap { $0 }
        let path = "data/" + SessionStorage.fileName
        directory.write(garbage, to: path)
        let error = code { () throws(StorageError) in _ = try open(directory.dataDirectory) }
        #expect(error?.code == .corruptDatabase, "\(String(describing: error))")
        #expect(error?.message.contains("move it aside") == true)
        var info = stat()
        #expect(stat(directory.path + "/" + path, &info) == 0 && Int(info.st_size) == garbage.count)
    }

    @Test(
        "a database of another program is refused with foreign_database",
        arguments: ["CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)", "PRAGMA application_id = 1234"]
    )
    func foreign(made statement: String) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        _ = mkdir(directory.dataDirectory, 0o700)
        let database = try SQLiteDatabase(path: directory.dataDirectory + "/" + SessionStorage.fileName)
        try database.execute(statement)
        database.close()
        let error = code { () throws(StorageError) in _ = try open(directory.dataDirectory) }
        #expect(error?.code == .foreignDatabase)
    }

    @Test("a schema newer than this version is refused, not downgraded")
    func tooNew() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try open(directory.dataDirectory).close()
        let database = try SQLiteDatabase(path: directory.dataDirectory + "/" + SessionStorage.fileName)
        try database.execute("PRAGMA user_version = 99")
        database.close()
        let error = code { () throws(StorageError) in _ = try open(directory.dataDirectory) }
        #expect(error?.code == .schemaTooNew)
        let check = try SQLiteDatabase(path: directory.dataDirectory + "/" + SessionStorage.fileName)
        #expect(try check.integer("PRAGMA user_version") == 99)
        check.close()
    }

    @Test("a file of schema version 1 is migrated to the current version with its sessions")
    func migration() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualSessionClock()
        let old = try StoredHarness(directory: directory.dataDirectory, clock: clock, schemaVersion: 1)
        let created = try old.store.create(username: "ada", data: Array("[1]".utf8))
        #expect(await old.commit() == nil)
        old.close()
        let check = try SQLiteDatabase(path: directory.dataDirectory + "/" + SessionStorage.fileName)
        #expect(try check.integer("PRAGMA user_version") == 1)
        #expect(try check.integer("SELECT count(*) FROM sqlite_schema WHERE name = 'storage_meta'") == 0)
        check.close()

        let migrated = try StoredHarness(directory: directory.dataDirectory, clock: clock)
        #expect(migrated.replay.migratedFromVersion == 1)
        #expect(migrated.replay.restored == 1)
        #expect(try migrated.store.data(token: created.token.rawValue) == Array("[1]".utf8))
        migrated.close()
        let after = try SQLiteDatabase(path: directory.dataDirectory + "/" + SessionStorage.fileName)
        #expect(try after.integer("PRAGMA user_version") == Int64(StorageSchema.currentVersion))
        after.close()
    }

    @Test("an unclean shutdown is reported at the next start")
    func uncleanShutdown() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = try StoredHarness(directory: directory.dataDirectory)
        // Simulate a crash: the lock goes with the process, the clean-shutdown mark is never set.
        first.store.detachJournal()
        first.storage.simulateCrashForTesting()
        let second = try StoredHarness(directory: directory.dataDirectory)
        #expect(!second.replay.previousShutdownWasClean)
        second.close()
        let third = try StoredHarness(directory: directory.dataDirectory)
        #expect(third.replay.previousShutdownWasClean)
        third.close()
    }

    @Test("a failing commit makes storage unwritable, answers waiters with the error, and recovers")
    func failingCommit() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let harness = try StoredHarness(directory: directory.dataDirectory)
        defer { harness.close() }
        _ = try harness.store.create(username: "before")
        #expect(await harness.commit() == nil)
        // Fill the file up to a page limit: SQLite then fails with SQLITE_FULL, as on a full disk.
        harness.storage.limitFileForTesting(extraPages: 2)
        let big = Array(#"{"x":"\#(String(repeating: "y", count: 12_000))"}"#.utf8)
        var tokens: [String] = []
        for index in 0..<20 { tokens.append(try harness.store.create(username: "u\(index)", data: big).token.rawValue) }
        let error = await harness.commit()
        #expect(error?.code == .diskFull, "\(String(describing: error))")
        #expect(!harness.storage.isWritable)
        #expect(harness.storage.statistics().errors[.diskFull, default: 0] >= 1)
        #expect(harness.storage.statistics().pendingChanges >= 20, "the failed batch is kept for retry")
        // Space comes back: the retry commits the kept batch and storage is writable again.
        harness.storage.limitFileForTesting(extraPages: nil)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while !harness.storage.isWritable, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(harness.storage.isWritable)
        #expect(await harness.commit() == nil)
        #expect(harness.storage.statistics().pendingChanges == 0)
    }

    @Test("a shutdown waits out a passing commit failure instead of dropping what is pending")
    func shutdownRetriesAPassingFailure() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let harness = try StoredHarness(directory: directory.dataDirectory)
        harness.storage.limitFileForTesting(extraPages: 2)
        let big = Array(#"{"x":"\#(String(repeating: "y", count: 12_000))"}"#.utf8)
        var tokens: [String] = []
        for index in 0..<20 {
            tokens.append(try harness.store.create(username: "late\(index)", data: big).token.rawValue)
        }
        #expect(await harness.commit()?.code == .diskFull)
        // The disk frees up 100 ms into the shutdown, well within one retry interval (500 ms). Both
        // run on queues of their own (serial queues get threads even when the shared ones are busy):
        // `close()` blocks, and on the few threads that run Swift tasks, which other tests block too,
        // the lifting could come after the shutdown.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue(label: "fault-test.disk").asyncAfter(deadline: .now() + .milliseconds(100)) {
                harness.storage.limitFileForTesting(extraPages: nil)
            }
            DispatchQueue(label: "fault-test.close").async {
                harness.close()
                done.resume()
            }
        }
        let reopened = try StoredHarness(directory: directory.dataDirectory)
        defer { reopened.close() }
        #expect(reopened.replay.restored == 20, "sessions pending at shutdown were dropped")
        for token in tokens { #expect(reopened.store.validate(token: token, refresh: false) != .unknown) }
    }

    @Test("while commits fail, the slides of the same sessions do not pile up, and the last one is stored")
    func touchesCoalesceWhileFailing() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualSessionClock()
        var harness: StoredHarness? = try StoredHarness(directory: directory.dataDirectory, clock: clock)
        var tokens: [String] = []
        for index in 0..<20 { tokens.append(try harness!.store.create(username: "s\(index)").token.rawValue) }
        #expect(await harness!.commit() == nil)
        harness!.storage.limitFileForTesting(extraPages: 2)
        let big = Array(#"{"x":"\#(String(repeating: "y", count: 12_000))"}"#.utf8)
        for index in 0..<20 { _ = try harness!.store.create(username: "big\(index)", data: big) }
        #expect(await harness!.commit()?.code == .diskFull)
        // 50 slides of each session while storage cannot write (one journaled touch per slide step).
        for _ in 0..<50 {
            clock.advance(by: .seconds(11))
            for token in tokens { #expect(harness!.store.validate(token: token) != .unknown) }
        }
        // After the next failed retries the queue holds each session once (an upsert, or a touch).
        let errorsBefore = harness!.storage.statistics().errors[.diskFull, default: 0]
        let deadline = ContinuousClock.now + .seconds(10)
        while harness!.storage.statistics().errors[.diskFull, default: 0] < errorsBefore + 2,
            ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(20))
        }
        let pending = harness!.storage.statistics().pendingChanges
        #expect(pending <= 40, "\(pending) changes pending for 40 sessions after 1,000 slides")
        // Space comes back; after a restart every session has its last slide.
        harness!.storage.limitFileForTesting(extraPages: nil)
        while !harness!.storage.isWritable, ContinuousClock.now < deadline + .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(await harness!.commit() == nil)
        let lastSeen = clock.nowMilliseconds()
        harness!.close()
        harness = nil
        let reopened = try StoredHarness(directory: directory.dataDirectory, clock: clock)
        defer { reopened.close() }
        for token in tokens {
            guard case .valid(let session) = reopened.store.validate(token: token, refresh: false) else {
                Issue.record("a session was lost")
                continue
            }
            #expect(session.lastSeenAt.millisecondsSinceEpoch == lastSeen)
        }
    }
}

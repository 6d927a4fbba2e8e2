import Logging
import SessionCore
import Synchronization
import Testing

@testable import SessionStorage

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory, removed by ``remove()``.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/sessiond-storage-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var dataDirectory: String { path + "/data" }

    func remove() {
        _ = system("rm -rf '\(path)'")
    }

    /// Size of the file at `path` in bytes (0 when it does not exist).
    static func fileSize(_ path: String) -> Int64 {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : 0
    }

    func write(_ bytes: [UInt8], to name: String) {
        let descriptor = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(descriptor >= 0)
        _ = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
    }
}

/// A store on a manual clock with a storage in `directory`.
struct StoredHarness {
    let clock: ManualSessionClock
    let store: SessionStore
    let storage: SessionStorage
    let replay: ReplayReport
    let events: EventLog

    init(
        directory: String,
        clock: ManualSessionClock = ManualSessionClock(),
        durability: SessionStorage.Durability = .commit,
        configuration: SessionStore.Configuration = .init(idleTimeout: .seconds(100), maxLifetime: .seconds(1000)),
        schemaVersion: Int = StorageSchema.currentVersion
    ) throws {
        self.clock = clock
        store = SessionStore(configuration: configuration, clock: clock)
        var logger = Logger(label: "test.storage")
        logger.logLevel = .critical
        storage = try SessionStorage(
            configuration: .init(dataDirectory: directory, durability: durability, commitInterval: .milliseconds(20)),
            logger: logger,
            schemaVersion: schemaVersion
        )
        let events = EventLog()
        self.events = events
        store.events.addObserver { event in events.append(event) }
        replay = try storage.replay(into: store)
        store.attachJournal(storage)
        storage.start()
    }

    /// Waits until everything recorded so far is committed; returns the commit's error.
    func commit() async -> StorageError? {
        await withCheckedContinuation { continuation in
            storage.afterCommit { error in continuation.resume(returning: error) }
        }
    }

    func close() {
        store.detachJournal()
        storage.close()
    }
}

/// Every event a store published, in order.
final class EventLog: Sendable {
    private let events = Mutex<[SessionEvent]>([])

    func append(_ event: SessionEvent) { events.withLock { $0.append(event) } }
    var all: [SessionEvent] { events.withLock { $0 } }
}

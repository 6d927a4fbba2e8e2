import SessionCore

/// The embedded backend: a ``SessionStore`` in memory, with an optional ``SessionStorage`` journal
/// (SQLite) that makes it survive restarts.
///
/// Reads and validations answer at once, from memory. A write is refused (`storage_unavailable`)
/// while the storage cannot write; otherwise it is applied in memory at once and, in `commit` and
/// `fsync` durability, answered only once the commit that holds it has succeeded (or with
/// `storage_unavailable` when that commit fails: the change stays queued and is retried).
///
/// ```swift
/// let storage = try SessionStorage(configuration: .init(dataDirectory: "./data"))
/// let store = SessionStore()
/// _ = try storage.replay(into: store)
/// store.attachJournal(storage)
/// storage.start()
/// let backend = LocalSessionBackend(store: store, storage: storage)
/// ```
public final class LocalSessionBackend: SessionBackend {
    /// The sessions.
    public let store: SessionStore
    /// The journal that stores them durably, if any (`nil`: memory only).
    public let storage: SessionStorage?

    /// - Parameters:
    ///   - store: the sessions; with `storage`, replayed from it and with it attached as its journal.
    ///   - storage: durable storage, or `nil` to keep sessions in memory only.
    public init(store: SessionStore, storage: SessionStorage? = nil) {
        self.store = store
        self.storage = storage
        localFeed = LocalEventFeed(events: store.events)
        storeID = storage?.storeID ?? "memory-" + localFeed.epoch.prefix(12)
    }

    private let localFeed: LocalEventFeed
    /// The `store` label of the store gauges: the SQLite file's id, or one per process in memory.
    public let storeID: String

    public var events: SessionEventHub { store.events }

    public var eventFeed: any SessionEventFeed { localFeed }

    public func create(_ request: NewSession) -> SessionReply<CreatedSession> {
        write { () throws(SessionError) in
            try store.create(
                username: request.username,
                data: request.data,
                idleTimeout: request.idleTimeout,
                maxLifetime: request.maxLifetime
            )
        }
    }

    public func validate(token: UnsafeBufferPointer<UInt8>, refresh: Bool) -> SessionReply<SessionValidation> {
        // A slide is journaled too, but never waited for: validation must not wait on the disk.
        .success(store.validate(tokenUTF8: token, refresh: refresh))
    }

    public func data(token: String) -> SessionReply<[UInt8]?> {
        read { () throws(SessionError) in try store.data(token: token) }
    }

    public func setData(token: String, data: [UInt8]?) -> SessionReply<Session> {
        write { () throws(SessionError) in try store.setData(token: token, data: data) }
    }

    public func rotate(token: String) -> SessionReply<CreatedSession> {
        write { () throws(SessionError) in try store.rotate(token: token) }
    }

    public func logout(token: String) -> SessionReply<Session> {
        write { () throws(SessionError) in try store.logout(token: token) }
    }

    public func session(id: SessionID) -> SessionReply<Session?> {
        .success(store.session(id: id))
    }

    public func revoke(id: SessionID) -> SessionReply<Session?> {
        // No session, no change: the 404 does not wait for a commit.
        write(waitsForCommit: { $0 != nil }, { store.revoke(id: id) })
    }

    public func revokeAll(username: String) -> SessionReply<Int> {
        write { store.revokeAll(username: username) }
    }

    public func sessions(username: String?, limit: Int, cursor: String?) -> SessionReply<Page<Session>> {
        read { () throws(SessionError) in
            if let username {
                try SessionStore.checkUsername(username, maxBytes: store.configuration.maxUsernameBytes)
            }
            return try store.sessions(username: username, limit: limit, cursor: cursor)
        }
    }

    public func users(limit: Int, cursor: String?) -> SessionReply<Page<LoggedInUser>> {
        read { () throws(SessionError) in try store.users(limit: limit, cursor: cursor) }
    }

    public func deleteAll() -> SessionReply<Int> {
        write { store.deleteAll() }
    }

    public func configuration() -> SessionReply<SessionStore.Configuration> {
        .success(store.configuration)
    }

    public func updateConfiguration(_ change: SessionConfigurationChange) -> SessionReply<SessionStore.Configuration> {
        read { () throws(SessionError) in try store.updateConfiguration { change.apply(to: &$0) } }
    }

    public func statistics() -> SessionReply<SessionStatistics> {
        var statistics = store.statistics()
        statistics.storeID = storeID
        return .success(statistics)
    }

    // MARK: Replies

    private func read<Value>(_ body: () throws(SessionError) -> Value) -> SessionReply<Value> {
        do {
            return .success(try body())
        } catch {
            return .failure(error)
        }
    }

    /// Runs a write unless storage cannot write at the moment (then nothing changes), and answers once
    /// it is durable when the durability mode says so and `waitsForCommit` says the value is a change.
    private func write<Value>(
        waitsForCommit: (Value) -> Bool = { _ in true },
        _ body: () throws(SessionError) -> Value
    ) -> SessionReply<Value> {
        if let storage, !storage.isWritable { return .failure(Self.unavailable(storage.lastError)) }
        let value: Value
        do {
            value = try body()
        } catch {
            return .failure(error)
        }
        guard let storage, storage.configuration.durability.acknowledgesAfterCommit, waitsForCommit(value) else {
            return .success(value)
        }
        let promise = SessionPromise<Value>()
        storage.afterCommit { error in
            if let error {
                promise.fail(Self.unavailable(error))
            } else {
                promise.succeed(value)
            }
        }
        return .pending(promise)
    }

    /// The error of a write that storage could not make durable (`nil`: storage is closed).
    static func unavailable(_ error: StorageError?) -> SessionError {
        SessionError(
            code: .storageUnavailable,
            message: "the change could not be stored durably (\(error?.code.rawValue ?? "storage closed")); retry later"
        )
    }
}

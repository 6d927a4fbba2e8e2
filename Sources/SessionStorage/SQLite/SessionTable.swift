import SessionCore

/// The `sessions` table of one open database, with the statements that read and change it.
///
/// `@unchecked Sendable`: used by one thread at a time, by construction: the thread that opens the
/// storage and replays it, then only the writer thread, then the thread that closes it after the
/// writer has stopped.
final class SessionTable: @unchecked Sendable {
    let database: SQLiteDatabase
    private let upsert: SQLiteDatabase.Statement
    private let touch: SQLiteDatabase.Statement
    private let remove: SQLiteDatabase.Statement

    init(database: SQLiteDatabase) throws(SQLiteError) {
        self.database = database
        upsert = try database.prepare(
            """
            INSERT OR REPLACE INTO sessions
                (id, token_hash, username, created_at, last_seen_at, expires_at, idle_timeout, data)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            """
        )
        touch = try database.prepare(
            "UPDATE sessions SET last_seen_at = ?3, idle_timeout = ?4 WHERE created_at = ?2 AND id = ?1"
        )
        remove = try database.prepare("DELETE FROM sessions WHERE created_at = ?2 AND id = ?1")
    }

    /// Finalizes the statements and closes the database.
    func close() {
        upsert.finalize()
        touch.finalize()
        remove.finalize()
        database.close()
    }

    /// Counts of the rows a batch wrote, by kind.
    struct Writes {
        var upserts = 0
        var touches = 0
        var removes = 0
    }

    /// Applies `changes` in one transaction. On failure nothing of the batch is kept.
    func apply(_ changes: ArraySlice<SessionChange>) throws(SQLiteError) -> Writes {
        var writes = Writes()
        try database.execute("BEGIN IMMEDIATE")
        do throws(SQLiteError) {
            for change in changes {
                switch change {
                case .upsert(let record):
                    try write(record)
                    writes.upserts += 1
                case .touch(let id, let createdAt, let lastSeenAt, let idleTimeout):
                    defer { touch.reset() }
                    try id.withUnsafeBytes { (bytes) throws(SQLiteError) in try touch.bind(blob: bytes, at: 1) }
                    try touch.bind(createdAt, at: 2)
                    try touch.bind(lastSeenAt, at: 3)
                    try touch.bind(idleTimeout, at: 4)
                    _ = try touch.step()
                    writes.touches += 1
                case .remove(let id, let createdAt, _):
                    defer { remove.reset() }
                    try id.withUnsafeBytes { (bytes) throws(SQLiteError) in try remove.bind(blob: bytes, at: 1) }
                    try remove.bind(createdAt, at: 2)
                    _ = try remove.step()
                    writes.removes += 1
                }
            }
            try database.execute("COMMIT")
        } catch {
            // After SQLITE_FULL or an I/O error SQLite may have rolled back already.
            try? database.execute("ROLLBACK")
            throw error
        }
        return writes
    }

    private func write(_ record: SessionRecord) throws(SQLiteError) {
        defer { upsert.reset() }
        try record.id.withUnsafeBytes { (bytes) throws(SQLiteError) in try upsert.bind(blob: bytes, at: 1) }
        try record.tokenHash.withUnsafeBytes { (bytes) throws(SQLiteError) in try upsert.bind(blob: bytes, at: 2) }
        try upsert.bind(record.username, at: 3)
        try upsert.bind(record.createdAt, at: 4)
        try upsert.bind(record.lastSeenAt, at: 5)
        try upsert.bind(record.expiresAt, at: 6)
        try upsert.bind(record.idleTimeout, at: 7)
        if let data = record.data {
            try upsert.bind(blob: data, at: 8)
        } else {
            try upsert.bind(blob: nil, at: 8)
        }
        _ = try upsert.step()
    }

    /// Reads every row in `batchSize` chunks. Rows that cannot be decoded (an id or hash that is not
    /// a blob of the right length, a time that is not an integer: the statements that change or
    /// delete a row would not find it) are counted in the returned value, not passed on.
    func readAll(batchSize: Int, _ body: ([SessionRecord]) throws(StorageError) -> Void) throws(StorageError) -> Int {
        var undecodable = 0
        do {
            let select = try database.prepare(
                "SELECT id, token_hash, username, created_at, last_seen_at, expires_at, idle_timeout, data FROM sessions"
            )
            defer { select.finalize() }
            var batch: [SessionRecord] = []
            batch.reserveCapacity(batchSize)
            while try select.step() {
                guard select.isBlob(0), select.isBlob(1),
                    let id = select.withBlob(0, { SessionID(bytes: $0) }),
                    let hash = select.withBlob(1, { TokenHash(bytes: $0) }),
                    let createdAt = select.integer(3), let lastSeenAt = select.integer(4),
                    let expiresAt = select.integer(5), let idleTimeout = select.integer(6)
                else {
                    undecodable += 1
                    continue
                }
                let data: [UInt8]? = select.isNull(7) ? nil : select.withBlob(7) { Array($0) }
                batch.append(
                    SessionRecord(
                        id: id,
                        tokenHash: hash,
                        username: select.text(2),
                        createdAt: createdAt,
                        lastSeenAt: lastSeenAt,
                        expiresAt: expiresAt,
                        idleTimeout: idleTimeout,
                        data: data
                    )
                )
                if batch.count == batchSize {
                    try body(batch)
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty { try body(batch) }
        } catch {
            throw StorageError.caught(error, path: database.path, action: "reading the sessions back")
        }
        return undecodable
    }

    /// Deletes the rows of `records` in one transaction.
    func delete(_ records: [SessionRecord]) throws(SQLiteError) {
        guard !records.isEmpty else { return }
        _ = try apply(records.map { SessionChange.remove(id: $0.id, createdAt: $0.createdAt, reason: .revoked) }[...])
    }

    /// A value of `storage_meta`.
    func meta(_ key: String) throws(SQLiteError) -> String? {
        let select = try database.prepare("SELECT value FROM storage_meta WHERE key = ?1")
        defer { select.finalize() }
        try select.bind(key, at: 1)
        return try select.step() ? select.text(0) : nil
    }

    /// Sets a value of `storage_meta` (its own transaction).
    func setMeta(_ key: String, _ value: String) throws(SQLiteError) {
        let statement = try database.prepare("INSERT OR REPLACE INTO storage_meta (key, value) VALUES (?1, ?2)")
        defer { statement.finalize() }
        try statement.bind(key, at: 1)
        try statement.bind(value, at: 2)
        _ = try statement.step()
    }

    /// Returns free pages to the file system when more than a quarter of the file (and at least
    /// 1,000 pages) is free. Returns how many pages were free.
    @discardableResult
    func vacuumIfMostlyFree() throws(SQLiteError) -> Int64 {
        let free = try database.integer("PRAGMA freelist_count")
        let total = try database.integer("PRAGMA page_count")
        if free >= 1000, free * 4 >= total {
            try database.execute("PRAGMA incremental_vacuum")
        }
        return free
    }
}

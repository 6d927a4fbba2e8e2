/// The layout of the database file and the migrations between its versions.
///
/// The file is marked with `PRAGMA application_id` (so a database of another program is refused,
/// not written into) and versioned with `PRAGMA user_version`. Opening a file of an older version
/// runs the missing migrations in order, each in its own transaction; a file of a newer version is
/// refused (`schema_too_new`), never downgraded.
///
/// - Version 1: `sessions`, one row per live session, keyed by (creation time, 16-byte id) so that
///   new sessions are appended at the end of the table instead of scattered over it (one page
///   written per commit, not one per session), holding SHA-256(token), never the token.
/// - Version 2: `storage_meta`, key/value facts about the file (the version that created it, the
///   last one that opened it, and whether the last run shut down cleanly).
enum StorageSchema {
    /// "USMS" in ASCII.
    static let applicationID: Int64 = 0x5553_4D53
    static let currentVersion = 2

    static let migrations: [(version: Int, sql: String)] = [
        (
            1,
            """
            CREATE TABLE sessions (
                id BLOB NOT NULL,
                token_hash BLOB NOT NULL,
                username TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                idle_timeout INTEGER NOT NULL,
                data BLOB,
                PRIMARY KEY (created_at, id)
            ) WITHOUT ROWID;
            """
        ),
        (
            2,
            """
            CREATE TABLE storage_meta (
                key TEXT PRIMARY KEY NOT NULL,
                value TEXT NOT NULL
            ) WITHOUT ROWID;
            INSERT INTO storage_meta (key, value) VALUES ('created_by', 'schema 1 file migrated'), ('clean_shutdown', '1');
            """
        ),
    ]

    /// What ``inspect(_:path:)`` found.
    enum FileState: Equatable {
        /// An empty (new) file.
        case new
        /// A file of ours at this schema version.
        case version(Int)
    }

    /// What ``prepare(_:path:upTo:)`` did.
    struct Outcome {
        var createdFile: Bool
        var migratedFrom: Int?
    }

    /// Reads the file's identity and version without writing anything, so that a file that is
    /// refused (damaged, foreign, too new) is left exactly as it was.
    static func inspect(_ database: SQLiteDatabase, path: String) throws(StorageError) -> FileState {
        do {
            let applicationID = try database.integer("PRAGMA application_id")
            let version = Int(try database.integer("PRAGMA user_version"))
            let objects = try database.integer("SELECT count(*) FROM sqlite_schema")
            if applicationID == 0 && version == 0 {
                guard objects == 0 else {
                    throw StorageError(
                        code: .foreignDatabase,
                        message: "\(path) is an SQLite database of another program (it has tables but no "
                            + "users-session-manager mark); use another --data-dir"
                    )
                }
                return .new
            }
            guard applicationID == Self.applicationID else {
                throw StorageError(
                    code: .foreignDatabase,
                    message:
                        "\(path) belongs to another program (application_id \(applicationID)); use another --data-dir"
                )
            }
            guard version <= currentVersion else {
                throw StorageError(
                    code: .schemaTooNew,
                    message: "\(path) has schema version \(version), newer than this sessiond understands "
                        + "(\(currentVersion)); run the newer sessiond, or restore a backup made for this version"
                )
            }
            return .version(version)
        } catch {
            throw StorageError.caught(error, path: path, action: "opening the database")
        }
    }

    /// Brings an inspected file to `target` (the current version unless a test builds an older
    /// file): marks a new file as ours and runs the missing migrations.
    static func prepare(
        _ database: SQLiteDatabase,
        state: FileState,
        upTo target: Int = currentVersion
    ) throws(SQLiteError) -> Outcome {
        switch state {
        case .new:
            try database.execute("PRAGMA application_id = \(Self.applicationID)")
            try migrate(database, from: 0, to: target)
            if target >= 2 {
                try database.execute(
                    "UPDATE storage_meta SET value = 'sessiond schema \(target)' WHERE key = 'created_by'"
                )
            }
            return Outcome(createdFile: true, migratedFrom: nil)
        case .version(let version):
            guard version < target else { return Outcome(createdFile: false, migratedFrom: nil) }
            try migrate(database, from: version, to: target)
            return Outcome(createdFile: false, migratedFrom: version)
        }
    }

    private static func migrate(_ database: SQLiteDatabase, from version: Int, to target: Int) throws(SQLiteError) {
        for migration in migrations where migration.version > version && migration.version <= target {
            try database.execute("BEGIN IMMEDIATE")
            do {
                try database.execute(migration.sql)
                try database.execute("PRAGMA user_version = \(migration.version)")
                try database.execute("COMMIT")
            } catch {
                try? database.execute("ROLLBACK")
                throw error
            }
        }
    }
}

internal import CSQLite

/// One SQLite connection and its prepared statements. The only file that touches `sqlite3` and
/// `sqlite3_stmt` pointers.
///
/// Not thread-safe: one thread at a time uses a connection (the opening thread during replay, then
/// the storage writer), which SQLite's default serialized mode would allow anyway.
final class SQLiteDatabase {
    private var handle: OpaquePointer?
    let path: String

    /// Opens (creating if needed) the database file at `path`.
    init(path: String) throws(SQLiteError) {
        self.path = path
        var connection: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let result = sqlite3_open_v2(path, &connection, flags, nil)
        guard result == SQLITE_OK, let connection else {
            let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            let extended = connection.map { sqlite3_extended_errcode($0) } ?? result
            sqlite3_close_v2(connection)
            throw SQLiteError(code: result & 0xFF, extendedCode: extended, message: message)
        }
        handle = connection
        sqlite3_extended_result_codes(connection, 1)
    }

    deinit { close() }

    /// Closes the connection (once its statements are finalized, `sqlite3_close_v2`). Idempotent.
    func close() {
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String) throws(SQLiteError) {
        let connection = try open()
        var message: UnsafeMutablePointer<CChar>?
        let result = sqlite3_exec(connection, sql, nil, nil, &message)
        guard result == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(result))
            sqlite3_free(message)
            throw SQLiteError(code: result & 0xFF, extendedCode: sqlite3_extended_errcode(connection), message: text)
        }
    }

    /// The integer answer of a `PRAGMA` or one-value `SELECT` (0 when it returns no row).
    func integer(_ sql: String) throws(SQLiteError) -> Int64 {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        guard try statement.step() else { return 0 }
        return statement.int64(0)
    }

    /// A prepared statement; finalized by ``Statement/finalize()`` or when it is released.
    func prepare(_ sql: String) throws(SQLiteError) -> Statement {
        let connection = try open()
        var raw: OpaquePointer?
        let result = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard result == SQLITE_OK, let raw else { throw error(result) }
        return Statement(raw: raw, database: self)
    }

    /// Rows changed by the last statement.
    var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

    private func open() throws(SQLiteError) -> OpaquePointer {
        guard let handle else {
            throw SQLiteError(code: 21, extendedCode: 21, message: "the database connection is closed")
        }
        return handle
    }

    fileprivate func error(_ result: Int32) -> SQLiteError {
        guard let handle else {
            return SQLiteError(
                code: result & 0xFF,
                extendedCode: result,
                message: String(cString: sqlite3_errstr(result))
            )
        }
        return SQLiteError(
            code: result & 0xFF,
            extendedCode: sqlite3_extended_errcode(handle),
            message: String(cString: sqlite3_errmsg(handle))
        )
    }

    /// A prepared statement. Parameters are numbered from 1, columns from 0.
    final class Statement {
        private var raw: OpaquePointer?
        private let database: SQLiteDatabase

        fileprivate init(raw: OpaquePointer, database: SQLiteDatabase) {
            self.raw = raw
            self.database = database
        }

        deinit { finalize() }

        func finalize() {
            if let raw { sqlite3_finalize(raw) }
            raw = nil
        }

        /// Advances: `true` when a row is available, `false` when done.
        func step() throws(SQLiteError) -> Bool {
            let result = sqlite3_step(raw)
            switch result {
            case SQLITE_ROW: return true
            case SQLITE_DONE: return false
            default: throw database.error(result)
            }
        }

        /// Resets the statement for another run and clears its parameters.
        func reset() {
            sqlite3_reset(raw)
            sqlite3_clear_bindings(raw)
        }

        func bind(_ value: Int64, at index: Int32) throws(SQLiteError) {
            try check(sqlite3_bind_int64(raw, index, value))
        }

        /// Binds a copy of `bytes` as a blob (`nil`: NULL).
        func bind(blob bytes: UnsafeRawBufferPointer?, at index: Int32) throws(SQLiteError) {
            guard let bytes else { return try check(sqlite3_bind_null(raw, index)) }
            // A zero-length blob must still be a blob, not NULL: SQLite needs a non-nil pointer.
            let base = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)
            try check(sqlite3_bind_blob(raw, index, base, Int32(bytes.count), csqlite_transient()))
        }

        /// Binds a copy of `bytes` as a blob.
        func bind(blob bytes: [UInt8], at index: Int32) throws(SQLiteError) {
            let result = bytes.withUnsafeBytes { buffer in
                let base = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)
                return sqlite3_bind_blob(raw, index, base, Int32(buffer.count), csqlite_transient())
            }
            try check(result)
        }

        func bind(_ text: String, at index: Int32) throws(SQLiteError) {
            var text = text
            let result = text.withUTF8 { utf8 in
                let base = UnsafeRawPointer(utf8.baseAddress) ?? UnsafeRawPointer(bitPattern: 1)
                return sqlite3_bind_text(
                    raw,
                    index,
                    base?.assumingMemoryBound(to: CChar.self),
                    Int32(utf8.count),
                    csqlite_transient()
                )
            }
            try check(result)
        }

        func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(raw, column) }

        /// The column as an integer, or `nil` when it holds another type (SQLite would convert it).
        func integer(_ column: Int32) -> Int64? {
            sqlite3_column_type(raw, column) == SQLITE_INTEGER ? sqlite3_column_int64(raw, column) : nil
        }

        func isNull(_ column: Int32) -> Bool { sqlite3_column_type(raw, column) == SQLITE_NULL }

        func isBlob(_ column: Int32) -> Bool { sqlite3_column_type(raw, column) == SQLITE_BLOB }

        /// The column as text (UTF-8), or "" when NULL.
        func text(_ column: Int32) -> String {
            guard let pointer = sqlite3_column_text(raw, column) else { return "" }
            let count = Int(sqlite3_column_bytes(raw, column))
            return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
        }

        /// Calls `body` with the column's bytes (empty for NULL or an empty blob); the bytes are valid
        /// only during the call.
        func withBlob<Result>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
            let pointer = sqlite3_column_blob(raw, column)
            let count = Int(sqlite3_column_bytes(raw, column))
            return try body(UnsafeRawBufferPointer(start: pointer, count: pointer == nil ? 0 : count))
        }

        private func check(_ result: Int32) throws(SQLiteError) {
            guard result == SQLITE_OK else { throw database.error(result) }
        }
    }
}

/// Why storage could not be opened, read or written. `code` is stable (`snake_case`); `message`
/// says what to do about it and names the file or directory.
public struct StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The data directory does not exist and could not be created.
        case directoryMissing = "data_directory_missing"
        /// The data directory (or the database file in it) cannot be written.
        case directoryNotWritable = "data_directory_not_writable"
        /// Another `sessiond` holds the data directory's lock.
        case directoryLocked = "data_directory_locked"
        /// The database file is damaged, or is not an SQLite database.
        case corruptDatabase = "corrupt_database"
        /// The file is an SQLite database of another application.
        case foreignDatabase = "foreign_database"
        /// The database was written by a newer version with a schema this version does not know.
        case schemaTooNew = "schema_too_new"
        /// The disk is full: writes are refused until space returns.
        case diskFull = "disk_full"
        /// Any other I/O or SQLite failure.
        case ioError = "io_error"
        /// Storage was closed.
        case closed
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// Maps whatever a block of storage code threw: a ``StorageError`` stays as it is, an SQLite
    /// failure is mapped by ``sqlite(_:path:action:)``, anything else is an `io_error`.
    static func caught(_ error: any Error, path: String, action: String) -> StorageError {
        switch error {
        case let error as StorageError: error
        case let error as SQLiteError: sqlite(error, path: path, action: action)
        default: StorageError(code: .ioError, message: "\(action) failed on \(path): \(error)")
        }
    }

    /// Maps a failed SQLite call on `path` while doing `action` ("replay", "commit", ...).
    static func sqlite(_ error: SQLiteError, path: String, action: String) -> StorageError {
        if error.isDiskFull {
            return StorageError(code: .diskFull, message: "\(action) failed: the disk holding \(path) is full")
        }
        if error.isCorruption {
            return StorageError(
                code: .corruptDatabase,
                message: "\(path) is damaged or is not an SQLite database (\(error)); "
                    + "move it aside to start with empty storage, or restore it from a backup"
            )
        }
        if error.code == SQLiteError.readOnly || error.code == SQLiteError.cannotOpen {
            return StorageError(
                code: .directoryNotWritable,
                message: "\(action) failed: cannot write \(path) (\(error))"
            )
        }
        return StorageError(code: .ioError, message: "\(action) failed on \(path): \(error)")
    }
}

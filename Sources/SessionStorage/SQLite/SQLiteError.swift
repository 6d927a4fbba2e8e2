/// A failed SQLite call: the primary and extended result codes and SQLite's message.
struct SQLiteError: Error, CustomStringConvertible {
    /// The primary result code (`SQLITE_FULL` = 13, ...).
    var code: Int32
    /// The extended result code.
    var extendedCode: Int32
    var message: String

    static let busy: Int32 = 5
    static let locked: Int32 = 6
    static let ioError: Int32 = 10
    static let corrupt: Int32 = 11
    static let full: Int32 = 13
    static let cannotOpen: Int32 = 14
    static let readOnly: Int32 = 8
    static let notADatabase: Int32 = 26

    var description: String { "\(message) (SQLite code \(extendedCode))" }

    /// The file is damaged or not a database at all.
    var isCorruption: Bool { code == Self.corrupt || code == Self.notADatabase }
    /// The disk (or the file system's quota) is full.
    var isDiskFull: Bool { code == Self.full }
}

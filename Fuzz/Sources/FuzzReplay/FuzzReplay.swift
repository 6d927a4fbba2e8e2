// Fuzz target: replay of a damaged SQLite file (`SessionStorage.replay(into:)` into a `SessionStore`).
//
// Once per process, a small file is written by the storage itself: a store with a journal, a few
// sessions created through its API (with and without data, default and own idle timeouts, a capped
// lifetime, a non-ASCII username; one second apart, with fixed ids and token hashes so that an input
// means the same in every process), committed and closed cleanly. For each input, a copy of that file
// is damaged by SQL through the storage's own `SQLiteDatabase`: column values of rows overwritten with
// values of any SQLite type (NULL, integers including the extremes, reals, text that need not be
// UTF-8, blobs), rows copied with one column changed (clashing ids and token hashes), rows deleted.
// Then the file is opened with `SessionStorage` and replayed into an empty store whose clock the input
// sets.
//
// Invariants:
// - Opening and replaying never crash and never throw (damage is in the rows, not in the file).
// - Every row is counted once: restored + expired + skipped = rows in the file; rows whose id is not
//   a 16-byte blob, whose token hash is not a 32-byte blob, or whose times are not integers are skipped, and so
//   are the later rows of an id already read, and rows whose username is invalid, whose times are out
//   of range (`SessionRecord.hasPlausibleTimes`) or whose data is not JSON; the others whose deadline
//   has passed are expired, and deleted from the file.
// - Only valid sessions are restored: each live session equals a valid row (id, username, times,
//   idle timeout, data) whose deadline is after now, and its data is what the API would accept (one
//   JSON value within the size limit); their ids are unique; the store reports as many live sessions
//   as were restored and no internal inconsistency (`invariantViolations()`, but for the id's shard
//   hint, which a restored session need not match); a valid row whose id and token hash no other
//   valid row shares is restored.
// - A restored session can be rendered (its timestamps in RFC 3339) and found by its id.
//
// Input: byte 0 picks the replay clock; then operations of a few bytes each: kind, row, column and a
// value (see `applyOperation` and `Value.read`; Fuzz/Corpus/FuzzReplay has examples).

import Dispatch
import FuzzSupport
import Logging

@testable import SessionCore
@testable import SessionStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let startTime: Int64 = 1_704_067_200_000
/// Replay clocks: from the creation time of the fixture's sessions to days after.
private let clockOffsets: [Int64] = [0, 30_000, 61_000, 119_000, 600_000, 901_000, 3_600_000, 86_400_000, -3_600_000]
private let columns = [
    "id", "token_hash", "username", "created_at", "last_seen_at", "expires_at", "idle_timeout", "data",
]
private let storeConfiguration = SessionStore.Configuration()
/// Opening and replaying log (a line per input otherwise).
private let quiet = Logger(label: "fuzz.replay", factory: { _ in SwiftLogNoOpLogHandler() })

// MARK: The fixture file

private struct Fixture {
    let fileBytes: [UInt8]
    let workDirectory: String
    let workFile: String
}

private func makeDirectory(_ template: String) -> String? {
    var bytes = Array(template.utf8CString)
    return bytes.withUnsafeMutableBufferPointer { buffer in
        mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
    }
}

private func readFile(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else { fatalError("FuzzReplay setup: cannot read \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return bytes
}

private func writeFile(_ path: String, _ bytes: [UInt8]) {
    guard let file = fopen(path, "wb") else { fatalError("FuzzReplay: cannot write \(path)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}

private let fixture: Fixture = {
    // Where scripts/fuzz.sh says (its scratch directory, removed afterwards), else a memory file
    // system when there is one (every input writes the file anew), else /tmp.
    let scratch = getenv("FUZZ_SCRATCH").map { String(cString: $0) }
    let base =
        scratch.flatMap { makeDirectory($0 + "/replay-XXXXXX") } ?? makeDirectory("/dev/shm/usm-fuzz-replay-XXXXXX")
        ?? makeDirectory("/tmp/usm-fuzz-replay-XXXXXX")
    guard let base else { fatalError("FuzzReplay setup: cannot create a scratch directory") }
    let templateDirectory = base + "/template"
    do {
        let storage = try SessionStorage(
            configuration: .init(dataDirectory: templateDirectory, durability: .commit),
            logger: quiet
        )
        let clock = ManualSessionClock(milliseconds: startTime)
        let store = SessionStore(configuration: storeConfiguration, clock: clock)
        _ = try storage.replay(into: store)
        store.attachJournal(storage)
        storage.start()
        // One second apart: the rows' order (by creation time, then id) is the same in every process.
        _ = try store.create(username: "ada", data: Array(#"{"theme":"dark","n":[1,2.5,null]}"#.utf8))
        clock.advance(by: .seconds(1))
        _ = try store.create(username: "ada")
        clock.advance(by: .seconds(1))
        _ = try store.create(username: "grace", data: Array("true".utf8), idleTimeout: .seconds(60))
        clock.advance(by: .seconds(1))
        _ = try store.create(username: "linus", idleTimeout: .seconds(900), maxLifetime: .seconds(120))
        clock.advance(by: .seconds(1))
        _ = try store.create(username: "zoë 🦀", data: Array(#""text""#.utf8))
        clock.advance(by: .seconds(1))
        let ended = try store.create(username: "bob")
        _ = try store.logout(token: ended.token.rawValue)
        let committed = DispatchSemaphore(value: 0)
        storage.afterCommit { error in
            if let error { fatalError("FuzzReplay setup: commit failed: \(error)") }
            committed.signal()
        }
        committed.wait()
        storage.close()
    } catch {
        fatalError("FuzzReplay setup: \(error)")
    }
    makeDeterministic(templateDirectory + "/" + SessionStorage.fileName)
    let workDirectory = base + "/work"
    mkdir(workDirectory, 0o700)
    return Fixture(
        fileBytes: readFile(templateDirectory + "/" + SessionStorage.fileName),
        workDirectory: workDirectory,
        workFile: workDirectory + "/" + SessionStorage.fileName
    )
}()

/// Replaces the random ids and token hashes of the fixture's rows with fixed ones (an id whose low
/// byte is its username's shard, as the store makes them; SHA-256 of a fixed token), so that an input
/// means the same in every process and a saved crash reproduces.
private func makeDeterministic(_ path: String) {
    do {
        let database = try SQLiteDatabase(path: path)
        defer { database.close() }
        let select = try database.prepare("SELECT created_at, username FROM sessions ORDER BY created_at")
        var rows: [(Int64, String)] = []
        while try select.step() { rows.append((select.int64(0), select.text(1))) }
        select.finalize()
        for (index, (createdAt, username)) in rows.enumerated() {
            var id = [UInt8](repeating: UInt8(index + 1), count: 16)
            id[0] = UInt8(SessionStore.shardIndex(of: username, mask: storeConfiguration.shardCount - 1))
            let token = "usm_" + String(repeating: Character(Unicode.Scalar(UInt8(65 + index))), count: 43)
            let hash = TokenHash(presented: token)!.withUnsafeBytes { Array($0) }
            let update = try database.prepare("UPDATE sessions SET id = ?1, token_hash = ?2 WHERE created_at = ?3")
            defer { update.finalize() }
            try update.bind(blob: id, at: 1)
            try update.bind(blob: hash, at: 2)
            try update.bind(createdAt, at: 3)
            _ = try update.step()
        }
    } catch {
        fatalError("FuzzReplay setup: fixing ids: \(error)")
    }
}

// MARK: Damage

/// A value of any SQLite type, with the SQL that stores it from parameter ?1.
private enum Value {
    case null
    case integer(Int64)
    case real(String)
    case text([UInt8])
    case blob([UInt8])

    static func read(_ input: inout FuzzInput) -> Value {
        switch input.choose(8) {
        case 0: return .null
        case 1:
            // Around the fixture's times, in seconds.
            let offset = Int64(Int16(bitPattern: UInt16(input.byte()) << 8 | UInt16(input.byte())))
            return .integer(startTime + offset * 1000)
        case 2:
            let extremes: [Int64] = [.min, .max, .min + 1, .max - 1, 0, -1, 1, -startTime, startTime * 4_000_000]
            return .integer(extremes[input.choose(extremes.count)])
        case 3: return .integer(Int64(bitPattern: input.uint64()))
        case 4:
            let small = Int64(Int16(bitPattern: UInt16(input.byte()) << 8 | UInt16(input.byte())))
            return .integer(small * 1000)
        case 5: return .real("\(Double(bitPattern: input.uint64()))")
        case 6: return .text(input.bytes(upTo: 300))
        default: return .blob(input.bytes(upTo: 40))
        }
    }

    var sql: String {
        switch self {
        case .real: "CAST(?1 AS REAL)"
        case .text: "CAST(?1 AS TEXT)"
        default: "?1"
        }
    }

    func bind(to statement: SQLiteDatabase.Statement) throws(SQLiteError) {
        switch self {
        case .null: try statement.bind(blob: nil, at: 1)
        case .integer(let value): try statement.bind(value, at: 1)
        case .real(let text): try statement.bind(text, at: 1)
        case .text(let bytes), .blob(let bytes): try statement.bind(blob: bytes, at: 1)
        }
    }
}

/// The key of the `n`th row in key order, as an SQL row value.
private func rowKey(_ parameter: Int) -> String {
    "(SELECT created_at, id FROM sessions ORDER BY created_at, id LIMIT 1 OFFSET ?\(parameter))"
}

/// One change to the file: overwrite a column of a row, copy a row with a column changed (a new row
/// when the column is part of the key, else the same row changed), delete a row, or set a column of
/// every row.
private func applyOperation(_ input: inout FuzzInput, to database: SQLiteDatabase, rowCount: Int) {
    let kind = input.choose(4)
    let row = Int64(input.choose(max(1, rowCount + 1)))
    let column = columns[input.choose(columns.count)]
    let sql: String
    var value = Value.null
    switch kind {
    case 0, 3:
        value = Value.read(&input)
        let scope = kind == 0 ? " WHERE (created_at, id) = \(rowKey(2))" : ""
        sql = "UPDATE sessions SET \(column) = \(value.sql)\(scope)"
    case 1:
        value = Value.read(&input)
        let selected = columns.map { $0 == column ? value.sql : $0 }.joined(separator: ", ")
        sql = """
            INSERT OR REPLACE INTO sessions (\(columns.joined(separator: ", ")))
            SELECT \(selected) FROM sessions ORDER BY created_at, id LIMIT 1 OFFSET ?2
            """
    default:
        sql = "DELETE FROM sessions WHERE (created_at, id) = \(rowKey(1))"
    }
    do {
        let statement = try database.prepare(sql)
        defer { statement.finalize() }
        if kind == 2 {
            try statement.bind(row, at: 1)
        } else {
            try value.bind(to: statement)
            if kind != 3 { try statement.bind(row, at: 2) }
        }
        _ = try statement.step()
    } catch {
        // A NOT NULL or key constraint refused it: the file stays as it was.
    }
}

// MARK: What the file holds

private struct Row {
    var id: [UInt8]
    var hash: [UInt8]
    var username: String
    var createdAt: Int64
    var lastSeenAt: Int64
    var expiresAt: Int64
    var idleTimeout: Int64
    var data: [UInt8]?
    /// Whether the id and hash columns hold blobs and the four time columns integers (SQLite would
    /// convert another type).
    var columnsHaveTheirTypes: Bool

    var isDecodable: Bool { id.count == 16 && hash.count == 32 && columnsHaveTheirTypes }
    /// What restore accepts: a valid username, times in range, data that is JSON.
    var isRestorable: Bool {
        let range: ClosedRange<Int64> = 0...SessionRecord.latestTime
        let plausible =
            range.contains(createdAt) && range.contains(lastSeenAt) && range.contains(expiresAt)
            && idleTimeout != .min && range.contains(idleTimeout < 0 ? -idleTimeout : idleTimeout)
        return plausible && data.map { JSONValidator.isValid($0) } != false
            && (try? SessionStore.checkUsername(username, maxBytes: storeConfiguration.maxUsernameBytes)) != nil
    }

    /// The earliest deadline, without overflow (nil: it cannot be computed in 64 bits).
    var deadline: Int64? {
        guard idleTimeout != .min else { return nil }
        let (idle, overflow) = lastSeenAt.addingReportingOverflow(idleTimeout < 0 ? -idleTimeout : idleTimeout)
        guard !overflow else { return nil }
        return min(idle, expiresAt)
    }
}

/// Every row as `SessionTable.readAll` reads it (same column accessors).
private func readRows(_ database: SQLiteDatabase) -> [Row] {
    var rows: [Row] = []
    do {
        let select = try database.prepare(
            "SELECT id, token_hash, username, created_at, last_seen_at, expires_at, idle_timeout, data FROM sessions"
        )
        defer { select.finalize() }
        while try select.step() {
            rows.append(
                Row(
                    id: select.withBlob(0) { Array($0) },
                    hash: select.withBlob(1) { Array($0) },
                    username: select.text(2),
                    createdAt: select.int64(3),
                    lastSeenAt: select.int64(4),
                    expiresAt: select.int64(5),
                    idleTimeout: select.int64(6),
                    data: select.isNull(7) ? nil : select.withBlob(7) { Array($0) },
                    columnsHaveTheirTypes: select.isBlob(0) && select.isBlob(1)
                        && (3...6).allSatisfy { select.integer(Int32($0)) != nil }
                )
            )
        }
    } catch {
        check(false, "the damaged file cannot be read: \(error)")
    }
    return rows
}

private func matches(_ session: Session, _ row: Row) -> Bool {
    session.id.withUnsafeBytes { Array($0) } == row.id && session.username == row.username
        && session.createdAt.millisecondsSinceEpoch == row.createdAt
        && session.lastSeenAt.millisecondsSinceEpoch == row.lastSeenAt
        && session.expiresAt.millisecondsSinceEpoch == row.expiresAt
        && session.idleTimeout == .milliseconds(row.idleTimeout < 0 ? -row.idleTimeout : row.idleTimeout)
        && session.data == row.data
}

// MARK: The target

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let now = startTime + clockOffsets[input.choose(clockOffsets.count)]
    let files = fixture

    // A fresh copy of the fixture, damaged.
    unlink(files.workFile + "-wal")
    unlink(files.workFile + "-shm")
    writeFile(files.workFile, files.fileBytes)
    let rows: [Row]
    do {
        let database = try SQLiteDatabase(path: files.workFile)
        var operations = 0
        while !input.isAtEnd && operations < 16 {
            let count = Int(try database.integer("SELECT count(*) FROM sessions"))
            applyOperation(&input, to: database, rowCount: count)
            operations += 1
        }
        rows = readRows(database)
        database.close()
    } catch {
        check(false, "setup of the damaged file: \(error)")
        return 0
    }

    // Replay.
    let store = SessionStore(configuration: storeConfiguration, clock: ManualSessionClock(milliseconds: now))
    let storage: SessionStorage
    let report: ReplayReport
    do {
        storage = try SessionStorage(configuration: .init(dataDirectory: files.workDirectory), logger: quiet)
    } catch {
        check(false, "a file with damaged rows cannot be opened: \(error)")
        return 0
    }
    defer { storage.close() }
    do {
        report = try storage.replay(into: store)
    } catch {
        check(false, "replay of damaged rows threw: \(error)")
        return 0
    }

    // Accounting.
    check(
        report.restored + report.expiredCount + report.skipped == rows.count,
        "restored \(report.restored) + expired \(report.expiredCount) + skipped \(report.skipped) != \(rows.count) rows"
    )
    // The first decodable row of each id, in the order the file is read; then what restore accepts.
    var seenIDs = Set<[UInt8]>()
    let firstOfEachID = rows.filter { $0.isDecodable && seenIDs.insert($0.id).inserted }
    let readable = firstOfEachID.filter(\.isRestorable)
    let expired = readable.filter { $0.deadline.map { $0 <= now } ?? false }
    let candidates = readable.filter { $0.deadline.map { $0 > now } ?? false }
    check(report.expiredCount == expired.count, "expired \(report.expiredCount), expected \(expired.count)")
    check(report.skipped >= rows.count - readable.count, "undecodable rows or invalid usernames not skipped")
    let remaining = (try? storage.table.database.integer("SELECT count(*) FROM sessions")).map(Int.init)
    check(remaining == rows.count - report.expiredCount, "expired rows not deleted from the file")

    // What is live.
    // Except "id shard hint": an id carries the shard its session was created in, a restored session
    // goes to its username's shard (another one when the username or the shard count changed), and
    // lookups by id try every shard after the hinted one.
    let problems = store.invariantViolations().filter { !$0.hasSuffix("id shard hint") }
    check(problems.isEmpty, "store inconsistent after replay: \(problems.prefix(3))")
    check(store.statistics().activeSessions == report.restored, "live sessions differ from the restored count")
    let sessions: [Session]
    do {
        sessions = try store.sessions(limit: SessionStore.maximumPageSize).items
    } catch {
        check(false, "listing after replay: \(error)")
        return 0
    }
    check(sessions.count == report.restored, "listed \(sessions.count) sessions, restored \(report.restored)")
    var ids = Set<SessionID>()
    for session in sessions {
        check(ids.insert(session.id).inserted, "two live sessions with the id \(session.id)")
        check(candidates.contains { matches(session, $0) }, "a restored session is not a valid, live row")
        if let data = session.data {
            // What the API accepts as data (SessionStore.create / setData): one JSON value, ≤ maxDataBytes.
            let valid = (try? SessionStore.checkData(data, maxBytes: storeConfiguration.maxDataBytes)) != nil
            check(valid, "a session was restored with data that is not one JSON value: \(data.prefix(32))")
        }
        // What GET /v1/sessions renders.
        for timestamp in [session.createdAt, session.lastSeenAt, session.idleExpiresAt, session.expiresAt] {
            check(timestamp.rfc3339.utf8.count == SessionTimestamp.rfc3339Length, "timestamp rendering")
        }
        check(store.session(id: session.id) != nil, "a restored session is not found by its id")
    }
    for row in candidates {
        // Ids and hashes are indexed by their first 8 bytes: sharing those may refuse a restore.
        let clashes = candidates.filter {
            $0.id.prefix(8) == row.id.prefix(8) || $0.hash.prefix(8) == row.hash.prefix(8)
        }
        if clashes.count == 1 {
            check(sessions.contains { matches($0, row) }, "a valid live row without clash was not restored")
        }
    }
    return 0
}

import SessionCore

extension RedisSessionBackend {
    // MARK: By id and by user

    public func session(id: SessionID) -> SessionReply<Session?> {
        guard let partition = credentials.partition(of: id) else { return .success(nil) }
        let promise = SessionPromise<Session?>()
        call(RedisFunctionLibrary.session, partition: partition, [id.withUnsafeBytes { Array($0) }]) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply) else {
                    return promise.fail(Self.malformedReply("session"))
                }
                if status == "OK", let session = rest.first.flatMap(RedisReplyDecoder.session) {
                    return promise.succeed(session)
                }
                if status == "N" {
                    if let ended = rest.first.flatMap(RedisReplyDecoder.ended) { report(ended: [ended]) }
                    return promise.succeed(nil)
                }
                promise.fail(Self.malformedReply("session"))
            }
        }
        return .pending(promise)
    }

    public func revoke(id: SessionID) -> SessionReply<Session?> {
        guard let partition = credentials.partition(of: id) else { return .success(nil) }
        let promise = SessionPromise<Session?>()
        call(RedisFunctionLibrary.revoke, partition: partition, [id.withUnsafeBytes { Array($0) }]) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply) else {
                    return promise.fail(Self.malformedReply("revoke"))
                }
                if status == "N" { return promise.succeed(nil) }
                guard status == "OK", rest.count == 2, let session = RedisReplyDecoder.session(rest[rest.startIndex])
                else { return promise.fail(Self.malformedReply("revoke")) }
                report(ended: RedisReplyDecoder.endedList(.array([rest[rest.startIndex + 1]])))
                promise.succeed(session)
            }
        }
        return .pending(promise)
    }

    public func revokeAll(username: String) -> SessionReply<Int> {
        let promise = SessionPromise<Int>()
        call(RedisFunctionLibrary.revokeUser, partition: partition(of: username), [Array(username.utf8)]) {
            [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply), status == "OK", let list = rest.first else {
                    return promise.fail(Self.malformedReply("revoke_user"))
                }
                let ended = RedisReplyDecoder.endedList(list)
                report(ended: ended)
                promise.succeed(ended.count)
            }
        }
        return .pending(promise)
    }

    public func deleteAll() -> SessionReply<Int> {
        let promise = SessionPromise<Int>()
        deleteAll(from: 0, total: 0, promise: promise)
        return .pending(promise)
    }

    /// Ends the sessions of `partition` a batch at a time, then those of the next partitions.
    private func deleteAll(from partition: Int, total: Int, promise: SessionPromise<Int>) {
        guard partition < store.partitions else { return promise.succeed(total) }
        call(RedisFunctionLibrary.deleteSome, partition: partition, [Array("1024".utf8)]) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply), status == "OK", rest.count == 2,
                    let more = rest.first?.integer
                else { return promise.fail(Self.malformedReply("delete_all")) }
                let ended = RedisReplyDecoder.endedList(rest[rest.startIndex + 1])
                report(ended: ended)
                deleteAll(from: more == 1 ? partition : partition + 1, total: total + ended.count, promise: promise)
            }
        }
    }

    // MARK: Listing

    public func sessions(username: String?, limit: Int, cursor: String?) -> SessionReply<Page<Session>> {
        do {
            if let username { try SessionStore.checkUsername(username, maxBytes: settings.maxUsernameBytes) }
            try Self.checkLimit(limit)
            if let username {
                return userSessions(username, offset: try cursor.map(Self.decodeOffsetCursor) ?? 0, limit: limit)
            }
            let (partition, after) = try cursor.map(decodePartitionCursor) ?? (0, "0")
            let promise = SessionPromise<Page<Session>>()
            listSessions(partition: partition, after: after, limit: limit, items: [], promise: promise)
            return .pending(promise)
        } catch {
            return .failure(error)
        }
    }

    /// Collects a page of all sessions: walks partitions in order, each in creation order.
    private func listSessions(
        partition: Int,
        after: String,
        limit: Int,
        items: [Session],
        promise: SessionPromise<Page<Session>>
    ) {
        let arguments = [Array(after.utf8), Array("\(limit - items.count)".utf8)]
        call(RedisFunctionLibrary.list, partition: partition, withContext: false, arguments) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply), status == "OK", rest.count == 2 else {
                    return promise.fail(Self.malformedReply("list"))
                }
                let items = items + (rest[rest.startIndex + 1].array ?? []).compactMap(RedisReplyDecoder.session)
                let last = rest.first?.string
                let (nextPartition, nextAfter) = last.map { (partition, $0) } ?? (partition + 1, "0")
                guard nextPartition < store.partitions else {
                    return promise.succeed(Page(items: items, nextCursor: nil))
                }
                guard items.count < limit else {
                    return promise.succeed(Page(items: items, nextCursor: "r\(nextPartition).\(nextAfter)"))
                }
                listSessions(partition: nextPartition, after: nextAfter, limit: limit, items: items, promise: promise)
            }
        }
    }

    private func userSessions(_ username: String, offset: Int, limit: Int) -> SessionReply<Page<Session>> {
        let promise = SessionPromise<Page<Session>>()
        let arguments = [Array(username.utf8), Array("\(offset)".utf8), Array("\(limit)".utf8)]
        call(RedisFunctionLibrary.userSessions, partition: partition(of: username), withContext: false, arguments) {
            result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply), status == "OK", rest.count == 2 else {
                    return promise.fail(Self.malformedReply("user_sessions"))
                }
                let items = (rest[rest.startIndex + 1].array ?? []).compactMap(RedisReplyDecoder.session)
                promise.succeed(Page(items: items, nextCursor: rest.first?.integer.map { "o\($0)" }))
            }
        }
        return .pending(promise)
    }

    public func users(limit: Int, cursor: String?) -> SessionReply<Page<LoggedInUser>> {
        do {
            try Self.checkLimit(limit)
            let (partition, after) = try cursor.map(decodeUserCursor) ?? (0, nil)
            let promise = SessionPromise<Page<LoggedInUser>>()
            listUsers(partition: partition, after: after, limit: limit, items: [], promise: promise)
            return .pending(promise)
        } catch {
            return .failure(error)
        }
    }

    /// Collects a page of users: walks partitions in order, each in the byte order of usernames.
    private func listUsers(
        partition: Int,
        after: [UInt8]?,
        limit: Int,
        items: [LoggedInUser],
        promise: SessionPromise<Page<LoggedInUser>>
    ) {
        let arguments = [
            after ?? [], after == nil ? [UInt8(ascii: "0")] : [UInt8(ascii: "1")], Array("\(limit - items.count)".utf8),
        ]
        call(RedisFunctionLibrary.users, partition: partition, withContext: false, arguments) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply), status == "OK", rest.count == 2,
                    let more = rest.first?.integer, let pairs = rest[rest.startIndex + 1].array
                else { return promise.fail(Self.malformedReply("users")) }
                var items = items
                var last: [UInt8]?
                for index in stride(from: 0, to: pairs.count - 1, by: 2) {
                    guard let name = pairs[index].bytes, let count = pairs[index + 1].integer else { continue }
                    last = name
                    if count > 0 {
                        items.append(
                            LoggedInUser(username: String(decoding: name, as: UTF8.self), sessionCount: Int(count))
                        )
                    }
                }
                let (nextPartition, nextAfter) = more == 1 ? (partition, last) : (partition + 1, nil)
                guard nextPartition < store.partitions else {
                    return promise.succeed(Page(items: items, nextCursor: nil))
                }
                guard items.count < limit else {
                    return promise.succeed(Page(items: items, nextCursor: Self.userCursor(nextPartition, nextAfter)))
                }
                listUsers(partition: nextPartition, after: nextAfter, limit: limit, items: items, promise: promise)
            }
        }
    }

    // MARK: Cursors

    private static func checkLimit(_ limit: Int) throws(SessionError) {
        guard limit >= 1, limit <= SessionStore.maximumPageSize else {
            throw SessionError(
                code: .invalidArgument,
                message: "limit must be between 1 and \(SessionStore.maximumPageSize)"
            )
        }
    }

    private static var cursorError: SessionError {
        SessionError(code: .invalidCursor, message: "the cursor was not produced by this listing")
    }

    private static func decodeOffsetCursor(_ text: String) throws(SessionError) -> Int {
        guard text.first == "o", let offset = Int(text.dropFirst()), offset >= 0 else { throw cursorError }
        return offset
    }

    /// `r<partition>.<creation sequence>`
    private func decodePartitionCursor(_ text: String) throws(SessionError) -> (Int, String) {
        guard text.first == "r" else { throw Self.cursorError }
        let parts = text.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let partition = Int(parts[0]), partition >= 0, partition < store.partitions,
            let sequence = Int64(parts[1]), sequence >= 0
        else { throw Self.cursorError }
        return (partition, "\(sequence)")
    }

    /// `q<partition>.<hex of the last username>` (empty hex: the partition's start).
    private static func userCursor(_ partition: Int, _ after: [UInt8]?) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = Array("q\(partition).".utf8)
        for byte in after ?? [] { text += [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] }
        return String(decoding: text, as: UTF8.self)
    }

    private func decodeUserCursor(_ text: String) throws(SessionError) -> (Int, [UInt8]?) {
        guard text.first == "q" else { throw Self.cursorError }
        let parts = text.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let partition = Int(parts[0]), partition >= 0, partition < store.partitions,
            parts[1].count % 2 == 0
        else { throw Self.cursorError }
        guard !parts[1].isEmpty else { return (partition, nil) }
        var bytes: [UInt8] = []
        var index = parts[1].startIndex
        while index < parts[1].endIndex {
            let next = parts[1].index(index, offsetBy: 2)
            guard let byte = UInt8(parts[1][index..<next], radix: 16) else { throw Self.cursorError }
            bytes.append(byte)
            index = next
        }
        return (partition, bytes)
    }
}

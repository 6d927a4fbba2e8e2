internal import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One connection to Redis through hiredis's synchronous API: the only file that touches a hiredis
/// pointer (`redisContext`, `redisReply`).
///
/// Not thread-safe (a hiredis context is not): one ``RedisClient`` worker owns each. Every blocking
/// call (connect, send, read) gives up after ``timeout``; after a failure the connection is
/// unusable (hiredis's error is sticky) and must be replaced.
///
/// Commands go through `redisAppendCommandArgv` (binary-safe arguments; Swift cannot call the variadic
/// `redisCommand`), so several can be appended and their replies read in order: a pipeline. A
/// pipelined client may also write encoded commands itself (``write(_:)``, from any one thread at a
/// time) while one thread reads the replies with ``readReply()``: hiredis then has nothing of its own
/// to send, and only reads.
final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>
    let timeout: Duration

    /// Connects, then logs in (`AUTH`) and selects the database when the endpoint says so.
    /// - Throws: ``RedisClientError`` `connect` (or `timeout`) when any step fails.
    init(endpoint: RedisEndpoint, timeout: Duration) throws(RedisClientError) {
        let interval = Self.timeval(timeout)
        guard let context = redisConnectWithTimeout(endpoint.host, Int32(endpoint.port), interval) else {
            throw RedisClientError(code: .connect, message: "cannot allocate a hiredis context")
        }
        guard context.pointee.err == 0 else {
            let message = Self.errorText(context)
            redisFree(context)
            throw RedisClientError(code: .connect, message: "\(endpoint): \(message)")
        }
        self.context = context
        self.timeout = timeout
        _ = redisSetTimeout(context, interval)
        _ = redisEnableKeepAlive(context)
        var login: [String] = []
        if let password = endpoint.password {
            login = endpoint.user.map { ["AUTH", $0, password] } ?? ["AUTH", password]
        }
        do {
            if !login.isEmpty { try expectOK(try command(login), doing: "AUTH") }
            if endpoint.database != 0 {
                try expectOK(try command(["SELECT", "\(endpoint.database)"]), doing: "SELECT")
            }
        } catch {
            throw RedisClientError(code: .connect, message: "\(endpoint): \(error.message)")
        }
    }

    deinit {
        redisFree(context)
    }

    /// Queues a command in the output buffer (sent by the next ``readReply()``).
    func append(_ arguments: [[UInt8]]) throws(RedisClientError) {
        // One contiguous copy of the arguments, and pointers into it, for hiredis to copy from.
        var flat: [UInt8] = []
        flat.reserveCapacity(arguments.reduce(1) { $0 + $1.count })
        var offsets: [Int] = []
        offsets.reserveCapacity(arguments.count)
        for argument in arguments {
            offsets.append(flat.count)
            flat.append(contentsOf: argument)
        }
        flat.append(0)
        let lengths = arguments.map(\.count)
        let result = flat.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return pointers.withUnsafeBufferPointer { pointerBuffer in
                lengths.withUnsafeBufferPointer { lengthBuffer in
                    redisAppendCommandArgv(
                        context,
                        Int32(arguments.count),
                        UnsafeMutablePointer(mutating: pointerBuffer.baseAddress),
                        lengthBuffer.baseAddress
                    )
                }
            }
        }
        guard result == REDIS_OK else { throw failure(doing: "append") }
    }

    /// Writes already encoded commands (``encode(_:into:)``) to the socket, blocking up to ``timeout``;
    /// `false` when the connection failed (it must then be replaced: a partial command may have gone).
    func write(_ bytes: [UInt8]) -> Bool {
        let fd = context.pointee.fd
        var offset = 0
        return bytes.withUnsafeBytes { buffer in
            while offset < buffer.count {
                let written = send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return false
                }
            }
            return true
        }
    }

    /// Makes a blocked ``readReply()`` on another thread return with an error (the connection is
    /// being abandoned).
    func abort() {
        _ = shutdown(context.pointee.fd, Int32(SHUT_RDWR))
    }

    /// Appends `arguments` to `buffer` as a RESP command (`*n`, then `$len` and the bytes of each).
    static func encode(_ arguments: [[UInt8]], into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "*"))
        buffer.append(contentsOf: String(arguments.count).utf8)
        buffer.append(contentsOf: [13, 10])
        for argument in arguments {
            buffer.append(UInt8(ascii: "$"))
            buffer.append(contentsOf: String(argument.count).utf8)
            buffer.append(contentsOf: [13, 10])
            buffer.append(contentsOf: argument)
            buffer.append(contentsOf: [13, 10])
        }
    }

    /// Sends what is queued, then reads the next reply (blocking up to ``timeout``).
    func readReply() throws(RedisClientError) -> RedisValue {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw failure(doing: "read") }
        defer { freeReplyObject(raw) }
        return Self.value(of: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// The next reply if a whole one was already read from the socket, else `nil`; never blocks.
    func bufferedReply() throws(RedisClientError) -> RedisValue? {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw failure(doing: "read") }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return Self.value(of: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Sends one command and reads its reply.
    func command(_ arguments: [[UInt8]]) throws(RedisClientError) -> RedisValue {
        try append(arguments)
        return try readReply()
    }

    /// Same as ``command(_:)-(_)`` with text arguments.
    func command(_ arguments: [String]) throws(RedisClientError) -> RedisValue {
        try command(arguments.map { Array($0.utf8) })
    }

    // MARK: Private

    private func expectOK(_ reply: RedisValue, doing step: String) throws(RedisClientError) {
        if case .error(let message) = reply { throw RedisClientError(code: .connect, message: "\(step): \(message)") }
    }

    private func failure(doing step: String) -> RedisClientError {
        let message = Self.errorText(context)
        let timedOut = context.pointee.err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
        return RedisClientError(code: timedOut ? .timeout : .io, message: "\(step): \(message)")
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    private static func value(of reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STRING:
            return .bulk(Self.bytes(node.str, node.len))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: Self.bytes(node.str, node.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: Self.bytes(node.str, node.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(node.integer))
        case REDIS_REPLY_ARRAY:
            guard let elements = node.element else { return .array([]) }
            return .array((0..<node.elements).map { index in elements[index].map(Self.value(of:)) ?? .null })
        default:
            return .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private static func timeval(_ duration: Duration) -> timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}

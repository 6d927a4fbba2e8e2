import SessionCore
import Synchronization

extension RedisSessionBackend {
    // MARK: Creating

    public func create(_ request: NewSession) -> SessionReply<CreatedSession> {
        do {
            try SessionStore.checkUsername(request.username, maxBytes: settings.maxUsernameBytes)
        } catch {
            return .failure(error)
        }
        // The checks after the data's size (made by the function, against the store's current limit),
        // in the embedded store's order.
        var refusal: SessionError?
        if let data = request.data, !JSONValidator.isValid(data) {
            refusal = SessionStore.invalidDataError
        }
        do {
            if refusal == nil, let idle = request.idleTimeout { try SessionStore.Configuration.checkIdleTimeout(idle) }
            if refusal == nil, let life = request.maxLifetime { try SessionStore.Configuration.checkLifetime(life) }
        } catch {
            refusal = error
        }
        if let refusal, request.data == nil { return .failure(refusal) }
        let promise = SessionPromise<CreatedSession>()
        attemptCreate(request, refusal: refusal, promise: promise, attempts: 3)
        return .pending(promise)
    }

    private func attemptCreate(
        _ request: NewSession,
        refusal: SessionError?,
        promise: SessionPromise<CreatedSession>,
        attempts: Int
    ) {
        let partition = partition(of: request.username)
        let (token, hash) = credentials.newToken(partition: partition)
        let id = credentials.newID(partition: partition)
        let arguments: [[UInt8]] = [
            hash.withUnsafeBytes { Array($0) }, id.withUnsafeBytes { Array($0) }, Array(request.username.utf8),
            request.data == nil ? [UInt8(ascii: "0")] : [UInt8(ascii: "1")], request.data ?? [],
            Array("\(request.idleTimeout?.milliseconds ?? 0)".utf8),
            Array("\(request.maxLifetime?.milliseconds ?? 0)".utf8),
            refusal == nil ? [UInt8(ascii: "0")] : [UInt8(ascii: "1")],
        ]
        call(RedisFunctionLibrary.create, partition: partition, arguments) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply) else {
                    return promise.fail(Self.malformedReply("create"))
                }
                if status == "E", let code = rest.first?.string {
                    let detail = rest.dropFirst().first?.integer ?? 0
                    switch code {
                    case "collision" where attempts > 1:
                        attemptCreate(request, refusal: refusal, promise: promise, attempts: attempts - 1)
                    case "refused" where refusal != nil:
                        promise.fail(refusal!)
                    default:
                        promise.fail(Self.refusal(code, detail: detail, operation: "create"))
                    }
                    return
                }
                guard status == "OK", rest.count == 2, let session = RedisReplyDecoder.session(rest[rest.startIndex])
                else { return promise.fail(Self.malformedReply("create")) }
                report(ended: RedisReplyDecoder.endedList(rest[rest.startIndex + 1]))
                counters.recordCreated()
                events.publish(
                    SessionEvent(
                        kind: .created,
                        id: session.id,
                        username: session.username,
                        createdAt: session.createdAt,
                        at: session.createdAt
                    )
                )
                promise.succeed(CreatedSession(session: session, token: token))
            }
        }
    }

    // MARK: Validating

    /// Most validations are plain reads: the session's hash and the token's "expired" mark
    /// (`HMGET`, `GET`, in one write), the deadlines compared with Redis's clock as estimated here
    /// (``RedisClockOffset``), and the user's sighting recorded with a `ZADD … GT` when one is due (at
    /// most once a second per user and instance). A session near or past a deadline, or whose slide
    /// is due (a tenth of its idle timeout since the last one, or a changed default), goes to the
    /// `sd1_validate` function, which decides with `TIME` and writes what is due.
    public func validate(token: UnsafeBufferPointer<UInt8>, refresh: Bool) -> SessionReply<SessionValidation> {
        guard let (partition, hash) = credentials.partition(ofPresented: token) else {
            counters.recordValidation(.malformed)
            return .success(.malformed)
        }
        let promise = SessionPromise<SessionValidation>()
        let tokenHash = hash.withUnsafeBytes { Array($0) }
        guard redisClock.now != nil else {
            validateWithFunction(partition: partition, tokenHash: tokenHash, refresh: refresh, promise: promise)
            return .pending(promise)
        }
        let prefix = Array(RedisKeys.prefix(partition).utf8)
        let reads: [[[UInt8]]] = [
            [Array("HMGET".utf8), prefix + Array("k:".utf8) + tokenHash] + Self.sessionFields,
            [Array("GET".utf8), prefix + Array("x:".utf8) + tokenHash],
        ]
        let started = RedisClient.now()
        client.sendPipelined(reads) { [self] results in
            recordDuration("validate_read", since: started)
            let session: RedisValue
            let mark: RedisValue
            switch (
                interpret(results[0], operation: "validate_read"), interpret(results[1], operation: "validate_read")
            ) {
            case (.success(let first), .success(let second)):
                (session, mark) = (first, second)
            case (.failure(let error), _), (_, .failure(let error)):
                return promise.fail(error)
            }
            let outcome: SessionValidation?
            if session.array?.first == .null {
                // No session: a token of a session ended by timeout is marked for a while.
                outcome =
                    mark.string.flatMap(SessionEndReason.init(rawValue:)).map(SessionValidation.expired) ?? .unknown
            } else {
                outcome = quietValidation(session, partition: partition, refresh: refresh).map(SessionValidation.valid)
            }
            guard let outcome else {
                return validateWithFunction(
                    partition: partition,
                    tokenHash: tokenHash,
                    refresh: refresh,
                    promise: promise
                )
            }
            counters.recordValidation(outcome)
            promise.succeed(outcome)
        }
        return .pending(promise)
    }

    /// The fields of a session's hash, in the order of a session row.
    private static let sessionFields: [[UInt8]] = ["id", "u", "c", "l", "i", "x", "d"].map { Array($0.utf8) }

    /// The session of an `HMGET k:<hash> id u c l i x d` reply if validating it needs no function
    /// call (recording the user's sighting when one is due); `nil` when it does (near or past a
    /// deadline, a slide due).
    private func quietValidation(_ reply: RedisValue, partition: Int, refresh: Bool) -> Session? {
        guard let fields = reply.array, fields.count == 7, let now = redisClock.now,
            let session = RedisReplyDecoder.session(reply), let idle = fields[4].integer
        else { return nil }
        let lastSeen = session.lastSeenAt.millisecondsSinceEpoch
        let deadline = min(session.idleExpiresAt.millisecondsSinceEpoch, session.expiresAt.millisecondsSinceEpoch)
        // A second of margin: the estimate of Redis's clock is good to a round trip.
        guard deadline - now > 1000 else { return nil }
        if refresh {
            let current = idle < 0 ? -knownConfiguration.withLock { $0.idleTimeout.milliseconds } : idle
            guard current == idle, now - lastSeen < abs(idle) / 10 else { return nil }
        }
        if !sightings.isRecent(session.username, now: now) {
            sightings.record(session.username, now: now)
            let sighting: [[UInt8]] = [
                Array("ZADD".utf8), Array((RedisKeys.prefix(partition) + "seen").utf8), Array("GT".utf8),
                Array("\(now)".utf8), Array(session.username.utf8),
            ]
            client.send(sighting) { [self] result in _ = interpret(result, operation: "see") }
        }
        return session
    }

    private func validateWithFunction(
        partition: Int,
        tokenHash: [UInt8],
        refresh: Bool,
        promise: SessionPromise<SessionValidation>
    ) {
        let arguments: [[UInt8]] = [tokenHash, refresh ? [UInt8(ascii: "1")] : [UInt8(ascii: "0")]]
        call(RedisFunctionLibrary.validate, partition: partition, arguments) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let validation = decodeValidation(reply) else {
                    return promise.fail(Self.malformedReply("validate"))
                }
                if case .valid(let session) = validation, let now = redisClock.now {
                    sightings.record(session.username, now: now)
                }
                counters.recordValidation(validation)
                promise.succeed(validation)
            }
        }
    }

    /// `{'V', session}`, `{'U'}` or `{'X', reason, ended}`.
    private func decodeValidation(_ reply: RedisValue) -> SessionValidation? {
        guard let (status, rest) = RedisReplyDecoder.status(reply) else { return nil }
        switch status {
        case "V":
            return rest.first.flatMap(RedisReplyDecoder.session).map(SessionValidation.valid)
        case "U":
            return .unknown
        case "X":
            return expired(rest).map(SessionValidation.expired)
        default:
            return nil
        }
    }

    /// The reason of an `{'X', reason, ended}` reply, reporting the session it ended, if any.
    func expired(_ rest: ArraySlice<RedisValue>) -> SessionEndReason? {
        guard let reason = rest.first?.string.flatMap(SessionEndReason.init(rawValue:)) else { return nil }
        if rest.count > 1, let ended = RedisReplyDecoder.ended(rest[rest.startIndex + 1]) { report(ended: [ended]) }
        return reason
    }

    // MARK: Operations on a token's session

    public func data(token: String) -> SessionReply<[UInt8]?> {
        tokenOperation(RedisFunctionLibrary.data, token: token, []) { rest in
            guard let first = rest.first else { return nil }
            return .some(first.bytes)
        }
    }

    public func setData(token: String, data: [UInt8]?) -> SessionReply<Session> {
        var refusal: SessionError?
        if let data, !JSONValidator.isValid(data) {
            refusal = SessionStore.invalidDataError
        }
        let arguments: [[UInt8]] = [
            data == nil ? [UInt8(ascii: "0")] : [UInt8(ascii: "1")], data ?? [],
            refusal == nil ? [UInt8(ascii: "0")] : [UInt8(ascii: "1")],
        ]
        return tokenOperation(RedisFunctionLibrary.setData, token: token, arguments, refusal: refusal) { rest in
            rest.first.flatMap(RedisReplyDecoder.session)
        }
    }

    public func rotate(token: String) -> SessionReply<CreatedSession> {
        guard let (partition, hash) = credentials.partition(ofPresented: token) else {
            return .failure(SessionStore.malformedError)
        }
        let (newToken, newHash) = credentials.newToken(partition: partition)
        return tokenOperation(
            RedisFunctionLibrary.rotate,
            partition: partition,
            hash: hash,
            [newHash.withUnsafeBytes { Array($0) }]
        ) { rest in
            rest.first.flatMap(RedisReplyDecoder.session).map { CreatedSession(session: $0, token: newToken) }
        }
    }

    public func logout(token: String) -> SessionReply<Session> {
        tokenOperation(RedisFunctionLibrary.logout, token: token, []) { [self] rest in
            guard rest.count == 2, let session = RedisReplyDecoder.session(rest[rest.startIndex]) else { return nil }
            report(ended: RedisReplyDecoder.endedList(.array([rest[rest.startIndex + 1]])))
            return session
        }
    }

    /// Calls a function that takes a token, answering its token errors as the embedded store does;
    /// `decode` reads the elements after `OK` (`nil`: malformed).
    private func tokenOperation<Value: Sendable>(
        _ name: String,
        token: String,
        _ arguments: [[UInt8]],
        refusal: SessionError? = nil,
        decode: @escaping @Sendable (ArraySlice<RedisValue>) -> Value?
    ) -> SessionReply<Value> {
        guard let (partition, hash) = credentials.partition(ofPresented: token) else {
            // The embedded store checks the data before the token.
            return .failure(refusal ?? SessionStore.malformedError)
        }
        return tokenOperation(name, partition: partition, hash: hash, arguments, refusal: refusal, decode: decode)
    }

    /// ``tokenOperation(_:token:_:refusal:decode:)`` for a token already parsed.
    private func tokenOperation<Value: Sendable>(
        _ name: String,
        partition: Int,
        hash: TokenHash,
        _ arguments: [[UInt8]],
        refusal: SessionError? = nil,
        decode: @escaping @Sendable (ArraySlice<RedisValue>) -> Value?
    ) -> SessionReply<Value> {
        let promise = SessionPromise<Value>()
        call(name, partition: partition, [hash.withUnsafeBytes { Array($0) }] + arguments) { [self] result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let reply):
                guard let (status, rest) = RedisReplyDecoder.status(reply) else {
                    return promise.fail(Self.malformedReply(name))
                }
                switch status {
                case "OK":
                    guard let value = decode(rest) else { return promise.fail(Self.malformedReply(name)) }
                    promise.succeed(value)
                case "U":
                    promise.fail(SessionStore.unknownError)
                case "X":
                    guard let reason = expired(rest) else { return promise.fail(Self.malformedReply(name)) }
                    promise.fail(SessionStore.expiredError(reason))
                case "E":
                    let code = rest.first?.string ?? ""
                    if code == "refused", let refusal { return promise.fail(refusal) }
                    promise.fail(Self.refusal(code, detail: rest.dropFirst().first?.integer ?? 0, operation: name))
                default:
                    promise.fail(Self.malformedReply(name))
                }
            }
        }
        return .pending(promise)
    }

    /// The error of an `{'E', code, detail}` reply.
    static func refusal(_ code: String, detail: Int64, operation: String) -> SessionError {
        switch code {
        case "data_too_large":
            SessionError(code: .dataTooLarge, message: "session data is larger than \(detail) bytes")
        case "session_limit_reached":
            SessionError(code: .sessionLimitReached, message: "user already has the maximum of \(detail) sessions")
        default:
            unavailable("\(operation): \(code)")
        }
    }
}

/// Where Redis listens and how to log in: parsed from `redis://[user:password@]host[:port][/db]`.
///
/// ```swift
/// let endpoint = try RedisEndpoint(url: "redis://sessiond:s3cret@10.0.0.5:6379/2")
/// // endpoint.host == "10.0.0.5", endpoint.port == 6379, endpoint.database == 2
/// ```
///
/// The user name and password may be percent-encoded (`%40` for `@`). An IPv6 host is written in
/// brackets (`redis://[::1]:6379`). `description` never shows the password.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The ACL user (`AUTH user password`); `nil` with a password: the `default` user.
    public var user: String?
    public var password: String?
    /// The logical database (`SELECT`).
    public var database: Int

    public init(host: String, port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses a `redis://` URL.
    /// - Throws: ``RedisEndpointError`` naming what is wrong.
    public init(url: String) throws(RedisEndpointError) {
        let scheme = "redis://"
        guard url.hasPrefix(scheme) else {
            throw RedisEndpointError("must start with redis:// (rediss:// and unix sockets are not supported)")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let number = Int(path), number >= 0, number <= 65_535 else {
                    throw RedisEndpointError("the database after / must be a number from 0")
                }
                database = number
            }
        }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let name = credentials[..<colon]
                user = name.isEmpty ? nil : try Self.percentDecoded(name)
                password = try Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else if !credentials.isEmpty {
                // redis://password@host is the form redis-cli accepts too.
                password = try Self.percentDecoded(credentials)
            }
        }
        let host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw RedisEndpointError("an IPv6 host needs its ]") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw RedisEndpointError("expected :port after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw RedisEndpointError("the host is missing") }
        var port = 6379
        if let portText {
            guard let number = Int(portText), (1...65_535).contains(number) else {
                throw RedisEndpointError("the port must be a number from 1 to 65535")
            }
            port = number
        }
        self.init(host: String(host), port: port, user: user, password: password, database: database)
    }

    /// `redis://host:port/db`, with `user:***@` when there are credentials.
    public var description: String {
        let credentials = password == nil ? "" : "\(user ?? ""):***@"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "redis://\(credentials)\(shownHost):\(port)/\(database)"
    }

    private static func percentDecoded(_ text: Substring) throws(RedisEndpointError) -> String {
        var bytes: [UInt8] = []
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = utf8.next().flatMap(Self.hexValue), let low = utf8.next().flatMap(Self.hexValue) else {
                throw RedisEndpointError("a % in the user name or password must be followed by two hex digits")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw RedisEndpointError("the user name or password is not valid UTF-8")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A `--redis-url` that cannot be used, with what is wrong.
public struct RedisEndpointError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

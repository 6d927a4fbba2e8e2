import ArgumentParser
import Logging
import MicroHTTP
import SessionServer

#if canImport(Glibc)
import Glibc
#endif

/// Who may call the API, and how it is reached: tokens and TLS.
struct SecurityOptions: ParsableArguments {
    @Option(
        help: """
            File of the API tokens (one a line; empty lines and lines starting with # are skipped) that \
            /v1 routes require (Authorization: Bearer).
            """
    )
    var apiTokenFile: String?

    @Option(
        help: """
            File of the admin tokens (one a line): when set, listing, revoking by id or user, deleting all \
            and the configuration require one of them, and API tokens keep the application routes only.
            """
    )
    var adminTokenFile: String?

    @Option(help: "PEM certificate chain (server certificate first) to serve HTTPS with; reloaded on SIGHUP.")
    var tlsCertFile: String?

    @Option(help: "PEM private key of --tls-cert-file; reloaded on SIGHUP.")
    var tlsKeyFile: String?

    @Flag(
        help: """
            Serve plain HTTP beyond loopback (with an API token): only when a TLS-terminating proxy is the \
            only client and the network between them is trusted.
            """
    )
    var allowPlainHttp = false

    /// The tokens: API tokens from `--api-token-file`, else `SESSIOND_API_TOKEN`; admin tokens from
    /// `--admin-token-file`, else `SESSIOND_ADMIN_TOKEN` (never from a flag: command lines are visible
    /// to other users). A token in both sets is refused: its scope would be ambiguous.
    func credentials(logger: Logger) throws -> APICredentials {
        let application = try tokens(file: apiTokenFile, variable: "SESSIOND_API_TOKEN", what: "API", logger: logger)
        let administration = try tokens(
            file: adminTokenFile,
            variable: "SESSIOND_ADMIN_TOKEN",
            what: "admin",
            logger: logger
        )
        for admin in administration where application.contains(admin) {
            throw StartupError("a token is both an API token and an admin token: give each its own")
        }
        return APICredentials(application: application, administration: administration)
    }

    /// The certificate and key to serve HTTPS with, read now; `nil` without `--tls-cert-file`.
    func tlsFiles() throws -> (certificate: String, key: String)? {
        switch (tlsCertFile, tlsKeyFile) {
        case (nil, nil): return nil
        case (let certificate?, let key?): return (certificate, key)
        default: throw StartupError("--tls-cert-file and --tls-key-file go together: set both or neither")
        }
    }

    /// Loads (or, with `into`, reloads) the TLS identity from the files.
    static func loadIdentity(
        _ files: (certificate: String, key: String),
        into identity: TLSIdentity? = nil
    ) throws(StartupError) -> TLSIdentity {
        guard let certificate = readBytes(files.certificate, limit: 1 << 20) else {
            throw StartupError("cannot read the TLS certificate file \(files.certificate)")
        }
        guard let key = readBytes(files.key, limit: 1 << 20) else {
            throw StartupError("cannot read the TLS key file \(files.key)")
        }
        do {
            if let identity {
                try identity.reload(certificatePEM: certificate, privateKeyPEM: key)
                return identity
            }
            return try TLSIdentity(certificatePEM: certificate, privateKeyPEM: key)
        } catch {
            throw StartupError("TLS certificate \(files.certificate) and key \(files.key): \(error.message)")
        }
    }

    /// Refuses an address beyond loopback without an API token, and one without TLS unless
    /// `--allow-plain-http` says a TLS-terminating proxy is in front.
    func checkExposure(host: String, credentials: APICredentials, tls: Bool) throws {
        guard !Self.isLoopback(host) else { return }
        guard !credentials.applicationTokens.isEmpty else {
            throw StartupError(
                "refusing to listen on \(host) without an API token: set --api-token-file or SESSIOND_API_TOKEN, "
                    + "or listen on a loopback address (127.0.0.1, ::1)"
            )
        }
        guard tls || allowPlainHttp else {
            throw StartupError(
                "refusing to send API and session tokens in clear on \(host): set --tls-cert-file and --tls-key-file "
                    + "to serve HTTPS, or --allow-plain-http when a TLS-terminating proxy on a trusted network is "
                    + "the only client"
            )
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The tokens of `file` (one a line), else of the environment variable; warns when the file is
    /// readable by other users.
    private func tokens(file: String?, variable: String, what: String, logger: Logger) throws -> [APIToken] {
        var text: String?
        if let file {
            guard let contents = Self.readFile(file) else {
                throw StartupError("cannot read the \(what) token file \(file)")
            }
            var status = stat()
            if stat(file, &status) == 0, status.st_mode & 0o077 != 0 {
                logger.warning(
                    "the \(what) token file is readable by other users; restrict it with chmod 600",
                    metadata: ["file": "\(file)"]
                )
            }
            text = contents
        } else if let value = getenv(variable) {
            text = String(cString: value)
        }
        guard let text else { return [] }
        var tokens: [APIToken] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
            if trimmed.isEmpty || trimmed.first == "#" { continue }
            do {
                tokens.append(try APIToken(String(trimmed)))
            } catch {
                throw StartupError("\(what) token \(tokens.count + 1) of \(file ?? variable): \(error.message)")
            }
        }
        guard !tokens.isEmpty else {
            throw StartupError("\(file ?? variable) holds no \(what) token")
        }
        return tokens
    }

    /// The UTF-8 contents of a file of at most 64 KiB, or `nil`.
    static func readFile(_ path: String) -> String? {
        readBytes(path, limit: 65536).flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// The bytes of a file of at most `limit` bytes, or `nil`.
    static func readBytes(_ path: String, limit: Int) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            bytes += buffer[0..<count]
            if bytes.count > limit { return nil }
        }
        return bytes
    }
}

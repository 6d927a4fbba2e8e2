import ArgumentParser
import Logging
import SessionServer

#if canImport(Glibc)
import Glibc
#endif

/// Who may call the API.
struct SecurityOptions: ParsableArguments {
    @Option(help: "File holding the API token that /v1 routes require (Authorization: Bearer).")
    var apiTokenFile: String?

    /// The API token: from `--api-token-file`, else from `SESSIOND_API_TOKEN` (never from a flag:
    /// command lines are visible to other users); `nil` when neither is set.
    func apiToken(logger: Logger) throws -> APIToken? {
        var secret: String?
        if let path = apiTokenFile {
            guard let contents = Self.readFile(path) else {
                throw StartupError("cannot read the API token file \(path)")
            }
            var status = stat()
            if stat(path, &status) == 0, status.st_mode & 0o077 != 0 {
                logger.warning(
                    "the API token file is readable by other users; restrict it with chmod 600",
                    metadata: ["file": "\(path)"]
                )
            }
            secret = contents
        } else if let value = getenv("SESSIOND_API_TOKEN") {
            secret = String(cString: value)
        }
        guard let secret else { return nil }
        let trimmed = String(secret.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        do {
            return try APIToken(trimmed)
        } catch {
            throw StartupError(error.message)
        }
    }

    /// Refuses an address beyond loopback without an API token.
    static func checkExposure(host: String, apiToken: APIToken?) throws {
        guard apiToken != nil || isLoopback(host) else {
            throw StartupError(
                "refusing to listen on \(host) without an API token: set --api-token-file or SESSIOND_API_TOKEN, "
                    + "or listen on a loopback address (127.0.0.1, ::1)"
            )
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The UTF-8 contents of a file of at most 64 KiB, or `nil`.
    static func readFile(_ path: String) -> String? {
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
            if bytes.count > 65536 { return nil }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

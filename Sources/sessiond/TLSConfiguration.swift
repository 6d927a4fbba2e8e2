import Logging
import MicroHTTP

#if canImport(Glibc)
import Glibc
#endif

/// The certificate both listeners serve, and the files it is read from again on SIGHUP.
struct TLSConfiguration: Sendable {
    let identity: TLSIdentity
    let files: (certificate: String, key: String)

    /// Reads the files again and serves them to the handshakes that start from now on; established
    /// connections keep theirs. A pair that cannot be loaded is logged and the previous one kept.
    func reload(logger: Logger) {
        do {
            _ = try SecurityOptions.loadIdentity(files, into: identity)
            logger.notice(
                "TLS certificate reloaded",
                metadata: ["certificate": "\(files.certificate)", "expires": "\(Self.date(identity.notAfter))"]
            )
        } catch {
            logger.error(
                "TLS certificate not reloaded; serving the previous one",
                metadata: ["error": "\(error.message)", "expires": "\(Self.date(identity.notAfter))"]
            )
        }
    }

    /// `seconds` since 1970 as an RFC 3339 UTC time (`2027-01-31T12:00:00Z`).
    static func date(_ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&time, &parts) != nil else { return "\(seconds)" }
        var buffer = [CChar](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

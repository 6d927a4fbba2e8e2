internal import CMicroHTTPD
internal import CTLSIdentity
import Synchronization

/// The certificate chain and private key an ``HTTPServer`` serves HTTPS with (libmicrohttpd's TLS,
/// GnuTLS; TLS 1.2 and 1.3 only), replaceable while the server runs.
///
/// ```swift
/// let identity = try TLSIdentity(certificatePEM: certificate, privateKeyPEM: key)
/// var configuration = HTTPServerConfiguration(port: 8443)
/// configuration.tls = identity
/// let server = try HTTPServer(configuration: configuration, handler: handler)
/// // later, after the files were renewed:
/// try identity.reload(certificatePEM: renewed, privateKeyPEM: renewedKey)
/// ```
///
/// A reload is used by the handshakes that start after it; established connections keep the
/// certificate they were opened with and are not interrupted. The pairs a reload replaces stay in
/// memory (a few kilobytes each) until the identity is released, since a handshake in progress may
/// still use them. One identity may serve several servers.
///
/// `@unchecked Sendable`: the C identity serialises its own changes (a mutex around the current pair).
public final class TLSIdentity: @unchecked Sendable {
    private let identity: OpaquePointer
    private let notAfterSeconds: Atomic<Int64>

    /// Loads a PEM certificate chain (the server's certificate first, then its intermediates) and the
    /// PEM private key of the server's certificate.
    ///
    /// - Throws: ``MicroHTTPError`` ``MicroHTTPError/Code/tlsFailed`` when either does not parse or
    ///   the key does not belong to the certificate.
    public init(certificatePEM: [UInt8], privateKeyPEM: [UInt8]) throws(MicroHTTPError) {
        TLSIdentity.installResolver
        guard let identity = CTLSIdentity_create() else {
            throw MicroHTTPError(code: .systemResourceFailed, message: "cannot allocate a TLS identity")
        }
        self.identity = identity
        self.notAfterSeconds = Atomic(0)
        // On error, deinit (which runs for a fully initialised instance) frees the C identity.
        try reload(certificatePEM: certificatePEM, privateKeyPEM: privateKeyPEM)
    }

    deinit {
        CTLSIdentity_destroy(identity)
    }

    /// Replaces the certificate chain and key for the handshakes that start from now on. On error the
    /// identity keeps serving its current pair.
    ///
    /// - Throws: ``MicroHTTPError`` ``MicroHTTPError/Code/tlsFailed``, as ``init(certificatePEM:privateKeyPEM:)``.
    public func reload(certificatePEM: [UInt8], privateKeyPEM: [UInt8]) throws(MicroHTTPError) {
        var message = [CChar](repeating: 0, count: 256)
        var notAfter: Int64 = 0
        let status = certificatePEM.withUnsafeBufferPointer { certificate in
            privateKeyPEM.withUnsafeBufferPointer { key in
                certificate.withMemoryRebound(to: CChar.self) { certificate in
                    key.withMemoryRebound(to: CChar.self) { key in
                        CTLSIdentity_load(
                            identity,
                            certificate.baseAddress,
                            certificate.count,
                            key.baseAddress,
                            key.count,
                            &message,
                            message.count,
                            &notAfter
                        )
                    }
                }
            }
        }
        guard status == 0 else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw MicroHTTPError(code: .tlsFailed, message: text, cause: status)
        }
        notAfterSeconds.store(notAfter, ordering: .relaxed)
    }

    /// When the server's certificate of the current pair expires, in seconds since 1970-01-01 UTC.
    public var notAfter: Int64 {
        notAfterSeconds.load(ordering: .relaxed)
    }

    /// Whether this libmicrohttpd was built with TLS (`MHD_FEATURE_TLS`).
    public static var isSupported: Bool {
        MHD_is_feature_supported(.FEATURE_TLS) == .YES
    }

    /// The daemon options that serve HTTPS with the identity of each connection's server: the
    /// certificate callback and the protocol versions.
    static var daemonOptions: [MHD_OptionItem] {
        [
            MHD_OptionItem(option: .HTTPS_CERT_CALLBACK, value: 0, ptr_value: CTLSIdentity_retrieve_function()),
            MHD_OptionItem(
                option: .HTTPS_PRIORITIES,
                value: 0,
                ptr_value: UnsafeMutableRawPointer(mutating: CTLSIdentity_priorities())
            ),
        ]
    }

    /// Sets, once, how a handshake finds its identity: its connection (the GnuTLS session's pointer)
    /// holds a ``ConnectionRecord`` (libmicrohttpd announces the connection before its handshake), and
    /// the record the identity of its server.
    private static let installResolver: Void = {
        CTLSIdentity_set_resolver { connection in
            guard let connection,
                let context = CMicroHTTPD_connection_socket_context(OpaquePointer(connection))
            else { return nil }
            let record = Unmanaged<ConnectionRecord>.fromOpaque(context).takeUnretainedValue()
            return record.tlsIdentity?.identity
        }
    }()
}

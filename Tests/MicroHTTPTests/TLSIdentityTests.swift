import MicroHTTP
import Testing

/// Self-signed P-256 certificates for 127.0.0.1, valid until 2126, made for these tests only.
private enum Fixture {
    static let certificateA = """
        -----BEGIN CERTIFICATE-----
        MIIBnjCCAUSgAwIBAgIUEut+jVTh81nlCVZmUt5SbPlqceMwCgYIKoZIzj0EAwIw
        GzEZMBcGA1UEAwwQbWljcm9odHRwLXRlc3QtYTAgFw0yNjEyMDcxMDExNTRaGA8y
        MTI2MTExMzEwMTE1NFowGzEZMBcGA1UEAwwQbWljcm9odHRwLXRlc3QtYTBZMBMG
        ByqGSM49AgEGCCqGSM49AwEHA0IABPP89AodshP0j3oOxa5Odyy9iQpv7i3rAgWd
        6nOLBPC+cU/78L9f4IVohSmqx3r5/YhsROI2RKDphMBHfgyrxVWjZDBiMB0GA1Ud
        DgQWBBQ2hTyuUNBPoZCiDsjZ7zcSmNUiKjAfBgNVHSMEGDAWgBQ2hTyuUNBPoZCi
        DsjZ7zcSmNUiKjAPBgNVHRMBAf8EBTADAQH/MA8GA1UdEQQIMAaHBH8AAAEwCgYI
        KoZIzj0EAwIDSAAwRQIhAIddKHilDpsAUAJNHNdKzSVpgxZOAYouOgwvbkHpvmJK
        AiAOs45hRk7clPLG4Bke5hDIk7hJ4Z1Hog4JnqkHp/dNwQ==
        -----END CERTIFICATE-----
        """
    static let keyA = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwewfUSMsKS/qTFHO
        PseP0Hce8E7YqxlEtun8C8YTW7KhRANCAATz/PQKHbIT9I96DsWuTncsvYkKb+4t
        6wIFnepziwTwvnFP+/C/X+CFaIUpqsd6+f2IbETiNkSg6YTAR34Mq8VV
        -----END PRIVATE KEY-----
        """
    static let certificateB = """
        -----BEGIN CERTIFICATE-----
        MIIBnjCCAUSgAwIBAgIUH9j8R6nl4rCY5TfeRCTGZbNtkUcwCgYIKoZIzj0EAwIw
        GzEZMBcGA1UEAwwQbWljcm9odHRwLXRlc3QtYjAgFw0yNjEyMDcxMDExNTRaGA8y
        MTI2MTExMzEwMTE1NFowGzEZMBcGA1UEAwwQbWljcm9odHRwLXRlc3QtYjBZMBMG
        ByqGSM49AgEGCCqGSM49AwEHA0IABA4TJps3+5qPLG9N87r/fOedQCAoBaKFBaRN
        QpBrJhheRMQqMKLaIP1haJuGnq3V4BW8zQnFyNGziwa/U94S2q+jZDBiMB0GA1Ud
        DgQWBBQeBJvB9IWZDkU0zLmPsdBWkTxyHTAfBgNVHSMEGDAWgBQeBJvB9IWZDkU0
        zLmPsdBWkTxyHTAPBgNVHRMBAf8EBTADAQH/MA8GA1UdEQQIMAaHBH8AAAEwCgYI
        KoZIzj0EAwIDSAAwRQIgRMV4iQqXFep9uH3MJI4PORYqrhILafoeFfRnKvhCmLsC
        IQDhOInI9ryPjxTZrkwJlUWkb4M0FM5wmPk/PdKBeQ25Mg==
        -----END CERTIFICATE-----
        """
    static let keyB = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgv1dwG9sCMJA4O2Zd
        qi8tV/+1R17oHNZebUcTty8ZRP+hRANCAAQOEyabN/uajyxvTfO6/3znnUAgKAWi
        hQWkTUKQayYYXkTEKjCi2iD9YWibhp6t1eAVvM0JxcjRs4sGv1PeEtqv
        -----END PRIVATE KEY-----
        """
}

struct TLSIdentityTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func loadsAPairAndReadsItsExpiry() throws {
        let identity = try TLSIdentity(certificatePEM: bytes(Fixture.certificateA), privateKeyPEM: bytes(Fixture.keyA))
        // Valid until 2126-11: between 2126-01-01 and 2127-01-01.
        #expect(identity.notAfter > 4_922_899_200 && identity.notAfter < 4_954_435_200)
        #expect(TLSIdentity.isSupported)
    }

    @Test func refusesAKeyOfAnotherCertificate() {
        #expect {
            try TLSIdentity(certificatePEM: bytes(Fixture.certificateA), privateKeyPEM: bytes(Fixture.keyB))
        } throws: { error in
            (error as? MicroHTTPError)?.code == .tlsFailed && "\(error)".contains("do not match")
        }
    }

    @Test(arguments: ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
    func refusesWhatIsNotAPEMCertificate(certificate: String) {
        #expect(throws: MicroHTTPError.self) {
            try TLSIdentity(certificatePEM: bytes(certificate), privateKeyPEM: bytes(Fixture.keyA))
        }
    }

    @Test func aFailedReloadKeepsThePreviousPair() throws {
        let identity = try TLSIdentity(certificatePEM: bytes(Fixture.certificateA), privateKeyPEM: bytes(Fixture.keyA))
        let expiry = identity.notAfter
        #expect(throws: MicroHTTPError.self) {
            try identity.reload(certificatePEM: bytes(Fixture.certificateB), privateKeyPEM: bytes(Fixture.keyA))
        }
        #expect(identity.notAfter == expiry)
        try identity.reload(certificatePEM: bytes(Fixture.certificateB), privateKeyPEM: bytes(Fixture.keyB))
        #expect(identity.notAfter > 0)
    }

    @Test func aServerStartsWithTLSAndStops() throws {
        var configuration = HTTPServerConfiguration(port: 0, threadCount: 1)
        configuration.tls = try TLSIdentity(
            certificatePEM: bytes(Fixture.certificateA),
            privateKeyPEM: bytes(Fixture.keyA)
        )
        let server = try HTTPServer(configuration: configuration) { _ in .text("ok") }
        #expect(server.port > 0)
        server.shutdown(gracePeriod: .zero)
    }
}

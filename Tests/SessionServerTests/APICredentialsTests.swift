import Testing

@testable import SessionServer

struct APICredentialsTests {
    private let application = "application-token-0001"
    private let second = "application-token-0002"
    private let admin = "administration-token-01"

    private func scope(_ credentials: APICredentials, _ candidate: String) -> Route.Scope? {
        Array(candidate.utf8).withUnsafeBufferPointer { credentials.scope(of: $0) }
    }

    @Test func withoutAdminTokensAnAPITokenGrantsEveryRoute() throws {
        let credentials = APICredentials(application: [try APIToken(application), try APIToken(second)])
        #expect(scope(credentials, application) == .administration)
        #expect(scope(credentials, second) == .administration)
        #expect(scope(credentials, application + "x") == nil)
        #expect(scope(credentials, "") == nil)
        #expect(credentials.isRequired(for: .application) && credentials.isRequired(for: .administration))
        #expect(!credentials.isRequired(for: .open))
    }

    @Test func withAdminTokensAnAPITokenKeepsTheApplicationScope() throws {
        let credentials = APICredentials(
            application: [try APIToken(application)],
            administration: [try APIToken(admin)]
        )
        #expect(scope(credentials, application) == .application)
        #expect(scope(credentials, admin) == .administration)
        #expect(scope(credentials, String(admin.dropLast())) == nil)
    }

    @Test func adminTokensAloneLeaveTheApplicationRoutesOpenOnLoopback() throws {
        let credentials = APICredentials(administration: [try APIToken(admin)])
        #expect(!credentials.isRequired(for: .application))
        #expect(credentials.isRequired(for: .administration))
        #expect(!APICredentials.none.isRequired(for: .administration))
    }

    @Test func tokensAreEqualOnlyWhenIdenticalAndNeverPrinted() throws {
        #expect(try APIToken(application) == APIToken(application))
        #expect(try APIToken(application) != APIToken(second))
        let credentials = APICredentials(
            application: [try APIToken(application)],
            administration: [try APIToken(admin)]
        )
        #expect(!"\(credentials)".contains("token-0"))
    }
}

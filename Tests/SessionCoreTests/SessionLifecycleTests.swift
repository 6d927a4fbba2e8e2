import Testing

@testable import SessionCore

struct SessionLifecycleTests {
    @Test func createThenValidateReturnsTheSession() throws {
        let harness = Harness()
        let created = try harness.store.create(username: "ada", data: Array(json: #"{"cart":[1,2]}"#))
        let session = try #require(harness.store.validate(token: created.token.rawValue).session)
        #expect(session.id == created.session.id)
        #expect(session.username == "ada")
        #expect(session.data == Array(json: #"{"cart":[1,2]}"#))
        #expect(session.idleTimeout == .seconds(3000))
        #expect(session.expiresAt.millisecondsSinceEpoch - session.createdAt.millisecondsSinceEpoch == 86_400_000)
        #expect(harness.recorder.createdCount == 1)
    }

    @Test func idleTimeoutExpiresAnUnusedSessionEvenBeforeTheReaperRuns() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10)))
        let token = try harness.store.create(username: "ada").token.rawValue
        harness.advance(seconds: 9.999)
        #expect(harness.store.validate(token: token, refresh: false).session != nil)
        harness.advance(seconds: 0.001)
        #expect(harness.store.validate(token: token) == .expired(.idleTimeout))
        // Ended once; its token keeps answering "expired" (not "unknown") for the retention.
        #expect(harness.store.validate(token: token) == .expired(.idleTimeout))
        #expect(harness.recorder.endReasons == [.idleTimeout])
        #expect(harness.store.statistics().activeSessions == 0)
    }

    @Test func validationSlidesTheIdleDeadlineButNeverTheAbsoluteOne() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10), maxLifetime: .seconds(25)))
        let token = try harness.store.create(username: "ada").token.rawValue
        for _ in 0..<2 {
            harness.advance(seconds: 8)
            let session = try #require(harness.store.validate(token: token).session)
            #expect(session.idleExpiresAt.millisecondsSinceEpoch == harness.clock.nowMilliseconds() + 10_000)
        }
        harness.advance(seconds: 8)  // t = 24: idle deadline would be 26, absolute is 25
        #expect(harness.store.validate(token: token).session != nil)
        harness.advance(seconds: 1)
        #expect(harness.store.validate(token: token) == .expired(.absoluteTimeout))
    }

    @Test func checkOnlyValidationDoesNotSlide() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10)))
        let token = try harness.store.create(username: "ada").token.rawValue
        harness.advance(seconds: 6)
        _ = harness.store.validate(token: token, refresh: false)
        harness.advance(seconds: 6)
        #expect(harness.store.validate(token: token) == .expired(.idleTimeout))
    }

    @Test func perSessionOverridesWinOverDefaults() throws {
        let harness = Harness(.init(idleTimeout: .seconds(100), maxLifetime: .seconds(1000)))
        let short = try harness.store.create(username: "ada", idleTimeout: .seconds(2), maxLifetime: .seconds(50))
        #expect(short.session.idleTimeout == .seconds(2))
        #expect(
            short.session.expiresAt.millisecondsSinceEpoch == short.session.createdAt.millisecondsSinceEpoch + 50_000
        )
        let normal = try harness.store.create(username: "ada")
        harness.advance(seconds: 2)
        #expect(harness.store.validate(token: short.token.rawValue) == .expired(.idleTimeout))
        #expect(harness.store.validate(token: normal.token.rawValue).session != nil)
    }

    @Test(arguments: [0.0, 1.0, 1.999])
    func idleTimeoutBelowTwoSecondsIsRefused(seconds: Double) {
        let harness = Harness()
        let duration = Duration.milliseconds(Int64(seconds * 1000))
        #expect(throws: SessionError.self) { try harness.store.create(username: "ada", idleTimeout: duration) }
        #expect(throws: SessionError.self) { try harness.store.updateConfiguration { $0.idleTimeout = duration } }
        #expect(harness.store.configuration.idleTimeout == .seconds(3000))
        #expect(harness.store.statistics().activeSessions == 0)
    }

    @Test func changedDefaultIdleTimeoutAppliesFromTheNextRefresh() throws {
        let harness = Harness(.init(idleTimeout: .seconds(100)))
        let follows = try harness.store.create(username: "ada").token.rawValue
        let own = try harness.store.create(username: "bob", idleTimeout: .seconds(100)).token.rawValue
        try harness.store.updateConfiguration { $0.idleTimeout = .seconds(5) }
        _ = harness.store.validate(token: follows)
        _ = harness.store.validate(token: own)
        harness.advance(seconds: 6)
        harness.store.reapExpired()
        #expect(harness.store.validate(token: follows) == .expired(.idleTimeout))  // reaped as idle
        #expect(harness.store.validate(token: own).session != nil)
        #expect(harness.recorder.endReasons == [.idleTimeout])
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func dataIsValidatedCappedAndRoundTrips() throws {
        let harness = Harness(.init(maxDataBytes: 64))
        let token = try harness.store.create(username: "ada").token.rawValue
        #expect(try harness.store.data(token: token) == nil)
        try harness.store.setData(token: token, data: Array(json: #"{"theme":"dark"}"#))
        #expect(try harness.store.data(token: token) == Array(json: #"{"theme":"dark"}"#))
        let big = Array(json: "\"" + String(repeating: "x", count: 63) + "\"")
        #expect(throws: SessionError(code: .dataTooLarge, message: "session data is larger than 64 bytes")) {
            try harness.store.setData(token: token, data: big)
        }
        #expect(throws: SessionError.self) { try harness.store.setData(token: token, data: Array(json: "{oops")) }
        #expect(try harness.store.data(token: token) == Array(json: #"{"theme":"dark"}"#))
        #expect(throws: SessionError.self) { try harness.store.create(username: "bob", data: Array(json: "[1,")) }
        #expect(throws: SessionError.self) { try harness.store.create(username: "bob", data: big) }
        try harness.store.setData(token: token, data: nil)
        #expect(try harness.store.data(token: token) == nil)
        #expect(harness.store.statistics().activeSessions == 1)
    }

    @Test(arguments: [
        "", String(repeating: "a", count: 257), "line\nbreak", "nul\u{0}", "del\u{7F}", "c1\u{85}control",
    ])
    func invalidUsernamesAreRefused(username: String) {
        let harness = Harness()
        #expect(throws: SessionError.self) { try harness.store.create(username: username) }
        #expect(harness.store.statistics().activeSessions == 0)
        #expect(harness.recorder.all.isEmpty)
    }

    @Test func entryIsTwoCacheLines() {
        // The memory target (≤ 200 B per session at 1 M sessions) and the two-line layout both depend
        // on it: a field added to SessionEntry must be paid for somewhere else.
        #expect(MemoryLayout<SessionEntry>.stride == 128)
    }

    @Test func controlCharacterScanMatchesTheScalarDefinition() {
        // Every scalar up to U+07FF (all one- and two-byte UTF-8 forms, so every C2 xx pair), and
        // some longer ones, alone and between other characters.
        let scalars = (0...0x7FF).compactMap(Unicode.Scalar.init) + ["\u{FFFD}", "🚀", "\u{2028}"]
        for scalar in scalars {
            let isControl = scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
            for text in [String(scalar), "a\(scalar)b", "é\(scalar)"] {
                #expect(
                    SessionStore.containsControlCharacter(text) == isControl,
                    "U+\(String(scalar.value, radix: 16))"
                )
            }
        }
    }

    @Test func unicodeUsernamesWork() throws {
        let harness = Harness()
        let created = try harness.store.create(username: "Zoë 🚀")
        #expect(harness.store.validate(token: created.token.rawValue).session?.username == "Zoë 🚀")
    }

    @Test func logoutEndsWithReasonLogoutAndKillsTheToken() throws {
        let harness = Harness()
        let token = try harness.store.create(username: "ada").token.rawValue
        let ended = try harness.store.logout(token: token)
        #expect(ended.username == "ada")
        #expect(harness.store.validate(token: token) == .unknown)
        #expect(throws: SessionError.self) { try harness.store.logout(token: token) }
        #expect(harness.recorder.endReasons == [.logout])
    }

    @Test func tokenOperationsOnAnExpiredSessionEndItOnceAndKeepReportingExpired() throws {
        let harness = Harness(.init(idleTimeout: .seconds(5)))
        let token = try harness.store.create(username: "ada").token.rawValue
        harness.advance(seconds: 5)
        #expect(throws: SessionStore.expiredError(.idleTimeout)) { try harness.store.data(token: token) }
        #expect(throws: SessionStore.expiredError(.idleTimeout)) { try harness.store.data(token: token) }
        #expect(harness.recorder.endReasons == [.idleTimeout])
    }

    @Test func rotationKeepsIdDataAndDeadlinesAndKillsTheOldToken() throws {
        let harness = Harness()
        let created = try harness.store.create(username: "ada", data: Array(json: "[1]"))
        harness.advance(seconds: 1)
        let rotated = try harness.store.rotate(token: created.token.rawValue)
        #expect(rotated.token.rawValue != created.token.rawValue)
        #expect(rotated.session.id == created.session.id)
        #expect(rotated.session.data == Array(json: "[1]"))
        #expect(rotated.session.expiresAt == created.session.expiresAt)
        #expect(harness.store.validate(token: created.token.rawValue) == .unknown)
        #expect(harness.store.validate(token: rotated.token.rawValue).session?.id == created.session.id)
        #expect(throws: SessionError.self) { try harness.store.rotate(token: created.token.rawValue) }
        #expect(harness.store.statistics().activeSessions == 1)
        #expect(harness.store.invariantViolations().isEmpty)
    }

    @Test func revokeByIdAndLookupById() throws {
        let harness = Harness()
        let created = try harness.store.create(username: "ada")
        #expect(harness.store.session(id: created.session.id)?.username == "ada")
        #expect(harness.store.revoke(id: created.session.id)?.id == created.session.id)
        #expect(harness.store.session(id: created.session.id) == nil)
        #expect(harness.store.revoke(id: created.session.id) == nil)
        #expect(harness.store.validate(token: created.token.rawValue) == .unknown)
        #expect(harness.recorder.endReasons == [.revoked])
    }

    @Test func eventsCarryIdUsernameTimesAndNeverTheToken() throws {
        let harness = Harness(.init(idleTimeout: .seconds(10)))
        let created = try harness.store.create(username: "ada")
        harness.advance(seconds: 12)
        harness.store.reapExpired()
        let events = harness.recorder.all
        #expect(events.count == 2)
        #expect(events[0].kind == .created)
        #expect(events[1].kind == .ended(.idleTimeout))
        #expect(events.allSatisfy { $0.id == created.session.id && $0.username == "ada" })
        #expect(events[1].lifetime == .seconds(10))  // ended at its deadline, not when reaped
        for event in events {
            #expect(!"\(event)".contains(created.token.rawValue.dropFirst(4)))
        }
    }

    @Test func eventStreamDeliversAndCountsDrops() async throws {
        let harness = Harness()
        let stream = harness.store.events.stream(bufferSize: 2)
        for index in 0..<5 { _ = try harness.store.create(username: "u\(index)") }
        var received = 0
        for await event in stream {
            #expect(event.kind == .created)
            received += 1
            if received == 2 { break }
        }
        #expect(harness.store.events.droppedEventCount == 3)
        #expect(harness.store.statistics().droppedEvents == 3)
    }
}

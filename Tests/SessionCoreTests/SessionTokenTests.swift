import Testing

@testable import SessionCore

#if canImport(Glibc)
import Glibc
#endif

struct SessionTokenTests {
    @Test func tokenHasPrefixLengthAndAlphabet() throws {
        let harness = Harness()
        let token = try harness.store.create(username: "ada").token.rawValue
        #expect(token.hasPrefix("usm_"))
        #expect(token.utf8.count == 47)
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        #expect(token.dropFirst(4).allSatisfy { alphabet.contains($0) })
    }

    @Test func tokensAreUniqueAndIdsAreNotDerivedFromThem() throws {
        let harness = Harness()
        var tokens = Set<String>()
        var ids = Set<SessionID>()
        for index in 0..<2000 {
            let created = try harness.store.create(username: "user\(index % 7)")
            tokens.insert(created.token.rawValue)
            ids.insert(created.session.id)
            #expect(!created.token.rawValue.contains(created.session.id.description))
        }
        #expect(tokens.count == 2000)
        #expect(ids.count == 2000)
    }

    @Test func tokenDigestIsSHA256() throws {
        #if os(Linux)
        // On Linux swift-crypto links BoringSSL, so the one-shot path must be the one in use: if a
        // swift-crypto update renamed the symbol, this fails instead of silently slowing every hash.
        #expect(TokenHash.usesOneShotDigest)
        #endif
        // FIPS 180-2 vectors, then random inputs of every length up to 300 bytes against swift-crypto.
        let vectors: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
        ]
        for (text, hex) in vectors {
            let hash = Array(text.utf8).withUnsafeBytes { TokenHash(sha256Of: $0) }
            let digest = hash.withUnsafeBytes {
                $0.map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
            }
            #expect(digest == hex)
        }
        var generator = SystemRandomNumberGenerator()
        for length in 0...300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            bytes.withUnsafeBytes { raw in
                #expect(TokenHash(sha256Of: raw) == TokenHash(swiftCryptoSHA256Of: raw), "length \(length)")
            }
        }
    }

    @Test func printingATokenRedactsIt() throws {
        let token = try Harness().store.create(username: "ada").token
        #expect(!"\(token)".contains(token.rawValue.dropFirst(4)))
        #expect(!String(reflecting: token).contains(token.rawValue.dropFirst(4)))
    }

    @Test(arguments: [
        "", "usm_", "usm_short", "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "usm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "usm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "usm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u{e9}", "usm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ",
    ])
    func malformedTokensAreRejectedAsValues(token: String) {
        let harness = Harness()
        #expect(harness.store.validate(token: token) == .malformed)
        #expect(throws: SessionError.self) { try harness.store.logout(token: token) }
        #expect(harness.store.statistics().validationsMalformed == 1)
        var bytes = token
        #expect(bytes.withUTF8 { harness.store.validate(tokenUTF8: $0) } == .malformed)
        #expect(harness.store.statistics().validationsMalformed == 2)
    }

    @Test func validatingTokenBytesMatchesValidatingTheString() throws {
        let harness = Harness()
        let created = try harness.store.create(username: "ada")
        var token = created.token.rawValue
        guard case .valid(let session) = token.withUTF8({ harness.store.validate(tokenUTF8: $0, refresh: false) })
        else {
            Issue.record("a valid token read as bytes did not validate")
            return
        }
        #expect(session == created.session)
        var unknown = "usm_" + String(repeating: "A", count: 43)
        #expect(unknown.withUTF8 { harness.store.validate(tokenUTF8: $0) } == .unknown)
        try harness.store.logout(token: token)
        #expect(token.withUTF8 { harness.store.validate(tokenUTF8: $0) } == .unknown)
    }

    @Test func wellFormedButUnknownTokenIsUnknown() {
        let harness = Harness()
        let token = "usm_" + String(repeating: "A", count: 43)
        #expect(harness.store.validate(token: token) == .unknown)
        #expect(harness.store.statistics().validationsUnknown == 1)
    }

    @Test func sessionIDRoundTripsAndRejectsNonCanonicalText() throws {
        let id = try Harness().store.create(username: "ada").session.id
        #expect(SessionID(id.description) == id)
        #expect(id.description.utf8.count == 22)
        #expect(SessionID("not-an-id") == nil)
        #expect(SessionID(String(repeating: "A", count: 21) + "B") == nil)  // non-zero trailing bits
        #expect(SessionID(String(repeating: "A", count: 22)) != nil)
    }

    @Test func rfc3339AgreesWithGmtime() {
        var generator = SystemRandomNumberGenerator()
        // 1900 to 2400, plus the edges of days and of the epoch.
        let samples =
            (0..<20_000).map { _ in Int64.random(in: -2_208_988_800_000...13_569_465_600_000, using: &generator) }
            + [-86_400_000, -86_399_999, -1, 0, 1, 86_399_999, 86_400_000, 253_402_300_799_999]
        for milliseconds in samples {
            var seconds = time_t(milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000)
            var parts = tm()
            gmtime_r(&seconds, &parts)
            let fraction = milliseconds - Int64(seconds) * 1000
            func padded(_ value: some BinaryInteger, _ width: Int) -> String {
                let digits = String(value)
                return String(repeating: "0", count: max(0, width - digits.count)) + digits
            }
            let expected =
                padded(parts.tm_year + 1900, 4) + "-" + padded(parts.tm_mon + 1, 2) + "-" + padded(parts.tm_mday, 2)
                + "T" + padded(parts.tm_hour, 2) + ":" + padded(parts.tm_min, 2) + ":" + padded(parts.tm_sec, 2)
                + "." + padded(fraction, 3) + "Z"
            #expect(SessionTimestamp(millisecondsSinceEpoch: milliseconds).rfc3339 == expected, "\(milliseconds)")
        }
    }

    @Test func rfc3339Timestamps() {
        #expect(SessionTimestamp(millisecondsSinceEpoch: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(SessionTimestamp(millisecondsSinceEpoch: 1_704_067_200_123).rfc3339 == "2024-01-01T00:00:00.123Z")
        #expect(SessionTimestamp(millisecondsSinceEpoch: 951_782_400_000).rfc3339 == "2000-02-29T00:00:00.000Z")
        #expect(SessionTimestamp(millisecondsSinceEpoch: 4_102_444_799_999).rfc3339 == "2099-12-31T23:59:59.999Z")
        #expect(SessionTimestamp(millisecondsSinceEpoch: -1).rfc3339 == "1969-12-31T23:59:59.999Z")
    }
}

struct CompactIndexTests {
    /// Random inserts and removals against a Dictionary model, with probe runs that wrap around.
    @Test func behavesLikeADictionary() {
        var index = CompactIndex()
        var model: [UInt32: UInt32] = [:]
        var random = SystemRandomNumberGenerator()
        var words: [UInt64] = []
        for step in 0..<50_000 {
            if step % 3 == 2, let word = words.randomElement(using: &random) {
                let key = UInt32(truncatingIfNeeded: word >> 32)
                let removed = index.remove(word, ifValue: model[key] ?? 0)
                #expect(removed == (model.removeValue(forKey: key) != nil))
            } else {
                // Few distinct high bits so probe runs collide and wrap.
                let word =
                    UInt64.random(in: 0...UInt64(4096), using: &random) << 32
                    | UInt64.random(in: 0...255, using: &random)
                let value = UInt32.random(in: 1..<UInt32.max, using: &random)
                let key = UInt32(truncatingIfNeeded: word >> 32)
                let inserted = index.insert(word, value: value)
                #expect(inserted == (model[key] == nil))
                if model[key] == nil { model[key] = value }
                words.append(word)
            }
            if step % 5000 == 0 {
                for (key, value) in model { #expect(index.find(UInt64(key) << 32) == value) }
            }
        }
        #expect(index.count == model.count)
        for (key, value) in model { #expect(index.find(UInt64(key) << 32) == value) }
    }

    /// Keys that share their high 32 bits (restored sessions) are all kept, found and removed.
    @Test func keysSharingTheirHigh32BitsAreKeptAside() {
        var index = CompactIndex()
        var model: [UInt64: UInt32] = [:]
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            // 64 distinct high halves: most keys share theirs with others.
            let word =
                UInt64.random(in: 0..<64, using: &random) << 32
                | UInt64.random(in: 0...UInt64(UInt32.max), using: &random)
            guard model[word] == nil else { continue }
            let value = UInt32.random(in: 0..<UInt32.max, using: &random)
            let inserted = index.insertSharingKey(word, value: value)
            #expect(inserted)
            model[word] = value
        }
        #expect(index.count == model.count)
        for (word, value) in model { #expect(index.contains(word, value: value), "\(word)") }
        // Remove in random order; what remains stays reachable, spilled or not.
        var remaining = model
        for (word, value) in model.shuffled(using: &random) {
            let removed = index.remove(word, ifValue: value)
            #expect(removed, "\(word)")
            remaining[word] = nil
            if remaining.count % 997 == 0 {
                for (other, otherValue) in remaining { #expect(index.contains(other, value: otherValue)) }
            }
        }
        #expect(index.count == 0)
    }

    /// A spilled word and a bucket holding another word with the same high 32 bits and the same value
    /// (a rotated token is indexed to its session's slot before the old token is removed): removing
    /// the spilled word leaves the bucket alone, and the other way round.
    @Test func removingASpilledWordLeavesABucketWithTheSameKeyAndValue() {
        let key: UInt64 = 0x1234_5678 << 32
        for removeSpilledFirst in [true, false] {
            var index = CompactIndex()
            let placed = index.insert(key | 1, value: 5)
            let spilled = index.insertSharingKey(key | 2, value: 7)
            index.remove(key | 1, ifValue: 5)
            // The key is free in the buckets again; a new word takes it with the spilled word's value.
            let reused = index.insert(key | 3, value: 7)
            #expect(placed && spilled && reused)
            #expect(index.spilledValue(for: key | 2) == 7 && index.find(key | 3) == 7 && index.count == 2)
            if removeSpilledFirst {
                let removed = index.remove(key | 2, ifValue: 7)
                #expect(removed)
                #expect(index.find(key | 3) == 7, "the bucket of another word was removed")
                #expect(index.spilledValue(for: key | 2) == nil)
            } else {
                let removed = index.remove(key | 3, ifValue: 7)
                #expect(removed)
                #expect(index.find(key | 3) == nil)
                #expect(index.spilledValue(for: key | 2) == 7, "the spilled word was removed instead")
            }
            #expect(index.count == 1)
        }
    }

    @Test func conditionalRemoveChecksTheValue() {
        var index = CompactIndex()
        let inserted = index.insert(7 << 32, value: 1)
        let wrongValueRemoved = index.remove(7 << 32, ifValue: 2)
        #expect(inserted && !wrongValueRemoved)
        #expect(index.find(7 << 32) == 1)
        let removed = index.remove(7 << 32, ifValue: 1)
        #expect(removed)
        #expect(index.find(7 << 32) == nil)
    }
}

import SessionCore
import Testing

@testable import SessionRedis

struct RedisKeysTests {
    @Test func aUserHasOnePartitionWhateverTheirName() {
        for name in ["ada", "{0}", "}{", "a{b}c", "x:y", "ü", String(repeating: "z", count: 256)] {
            let partition = RedisKeys.partition(of: name, count: 128)
            #expect((0..<128).contains(partition))
            #expect(RedisKeys.partition(of: name, count: 128) == partition)
            // The hash tag is the first {…}: the partition's, before any byte of the name.
            #expect(RedisKeys.prefix(partition).hasPrefix("sd:{\(partition)}:"))
        }
        let spread = Set((0..<10_000).map { RedisKeys.partition(of: "user\($0)", count: 128) })
        #expect(spread.count == 128)
    }

    @Test func tokensAndIdsCarryTheirPartition() throws {
        let credentials = PartitionedCredentials(partitionCount: 300)
        for partition in [0, 1, 255, 256, 299] {
            let (token, hash) = credentials.newToken(partition: partition)
            #expect(token.rawValue.count == 47 && token.rawValue.hasPrefix("usm_"))
            let presented = try #require(credentials.partition(ofPresented: token.rawValue))
            #expect(presented.partition == partition)
            #expect(presented.hash == hash)
            #expect(credentials.partition(of: credentials.newID(partition: partition)) == partition)
        }
        // 240 random bits: two tokens of one partition differ.
        #expect(credentials.newToken(partition: 7).0.rawValue != credentials.newToken(partition: 7).0.rawValue)
        // Out of range, or not shaped like a token: malformed.
        #expect(credentials.partition(ofPresented: "usm____" + String(repeating: "A", count: 40)) == nil)
        #expect(credentials.partition(ofPresented: "usm_AAA" + String(repeating: "A", count: 39)) == nil)
        #expect(credentials.partition(ofPresented: "usm_AA*" + String(repeating: "A", count: 40)) == nil)
        #expect(credentials.partition(ofPresented: "usm_AAA" + String(repeating: "A", count: 40))?.partition == 0)
        let foreign = try #require(SessionID("__" + String(repeating: "A", count: 20)))
        #expect(credentials.partition(of: foreign) == nil)
    }
}

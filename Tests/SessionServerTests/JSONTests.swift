import SessionCore
import Testing

@testable import SessionServer

struct JSONTests {
    @Test func bodyMembersKeepTheirRawBytes() throws {
        let body = try JSONBody(
            Array(#" {"username": "ada", "data": {"a": [1, "x]"]} , "idleTimeout": 2.5} "#.utf8),
            maximumDepth: 65
        )
        #expect(body.members["username"]?.value == .string("ada"))
        #expect(body.members["idleTimeout"]?.value == .number(2.5))
        #expect(String(decoding: body.members["data"]!.raw, as: UTF8.self) == #"{"a": [1, "x]"]}"#)
        #expect(body.members["data"]?.value == .object)
    }

    @Test func stringEscapesAreDecoded() throws {
        let body = try JSONBody(Array(#"{"u": "a\"b\\c\n\u00e9\ud83d\ude00"}"#.utf8), maximumDepth: 65)
        #expect(body.members["u"]?.value == .string("a\"b\\c\né😀"))
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, "{", "[1]x", "\u{FF}", #"{"u":"a\ud800b"}"#, #"{"d":["\udc00"]}"#, #"{"u":"\ud800\u0041"}"#,
    ])
    func badBodiesAreInvalidJSON(text: String) {
        #expect(throws: APIError.self) { try JSONBody(Array(text.utf8), maximumDepth: 65) }
    }

    @Test func nonObjectBodiesAreInvalidRequests() {
        #expect(throws: APIError.invalidRequest("the body must be a JSON object")) {
            try JSONBody(Array("[1,2]".utf8), maximumDepth: 65)
        }
    }

    @Test func unknownFieldsAreNamed() throws {
        let body = try JSONBody(Array(#"{"username":"a","usernme":"b"}"#.utf8), maximumDepth: 65)
        #expect(throws: APIError.unknownField("usernme")) { try body.requireOnly(["username"]) }
    }

    @Test func writerEscapesAndFormats() {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("s")
        writer.string("q\"\\\n\u{1}é")
        writer.key("n")
        writer.seconds(.milliseconds(2500))
        writer.key("w")
        writer.seconds(.seconds(3000))
        writer.key("m")
        writer.seconds(.milliseconds(2005))
        writer.key("a")
        writer.beginArray()
        writer.integer(1)
        writer.null()
        writer.bool(true)
        writer.endArray()
        writer.key("t")
        writer.timestamp(SessionTimestamp(millisecondsSinceEpoch: 1_704_067_200_123))
        writer.endObject()
        #expect(
            String(decoding: writer.bytes, as: UTF8.self)
                == #"{"s":"q\"\\\n\u0001é","n":2.5,"w":3000,"m":2.005,"a":[1,null,true],"t":"2024-01-01T00:00:00.123Z"}"#
        )
        #expect(JSONValidator.isValid(writer.bytes))
    }

    @Test func writerCopiesPlainRunsAndEscapesAtEveryPosition() {
        for text in ["", "plain", "\"", "a\"", "\"a", "a\\b\u{7F}c\u{1F}", "end\n", "ünï\tcode\u{0}"] {
            var writer = JSONWriter(capacity: 0)
            writer.beginArray()
            writer.string(text)
            writer.string(text)
            writer.endArray()
            #expect(JSONValidator.isValid(writer.bytes), "\(text.debugDescription)")
            let expected = text.unicodeScalars.map { scalar -> String in
                switch scalar {
                case "\"": return "\\\""
                case "\\": return "\\\\"
                case "\n": return "\\n"
                case "\r": return "\\r"
                case "\t": return "\\t"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                    let hex = String(scalar.value, radix: 16)
                    return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: return String(scalar)
                }
            }.joined()
            #expect(String(decoding: writer.bytes, as: UTF8.self) == "[\"\(expected)\",\"\(expected)\"]")
        }
    }

    @Test func writerGrowsAndKeepsWritingAfterBytesIsRead() {
        var writer = JSONWriter(capacity: 0)
        writer.beginArray()
        writer.string(String(repeating: "a", count: 40))
        let early = writer.bytes
        #expect(early.count == 43)
        writer.integer(-7)
        writer.string("\u{1}" + String(repeating: "b", count: 100))
        writer.endArray()
        let expected =
            "[\"" + String(repeating: "a", count: 40) + "\",-7,\"\\u0001" + String(repeating: "b", count: 100) + "\"]"
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
        #expect(String(decoding: early, as: UTF8.self) == "[\"" + String(repeating: "a", count: 40) + "\"")
    }

    @Test func writerNumbersIdsAndNesting() throws {
        var writer = JSONWriter()
        let id = try #require(SessionID("AAECAwQFBgcICQoLDA0ODw"))
        writer.beginObject()
        writer.key("i")
        writer.integer(Int.min)
        writer.key("z")
        writer.integer(0)
        writer.key("id")
        writer.id(id)
        writer.key("o")
        writer.beginObject()
        writer.endObject()
        writer.key("l")
        writer.beginArray()
        writer.beginArray()
        writer.endArray()
        writer.beginObject()
        writer.key("k")
        writer.bool(false)
        writer.endObject()
        writer.endArray()
        writer.key("s")
        writer.seconds(.milliseconds(10))
        writer.endObject()
        #expect(
            String(decoding: writer.bytes, as: UTF8.self)
                == #"{"i":-9223372036854775808,"z":0,"id":"AAECAwQFBgcICQoLDA0ODw","o":{},"l":[[],{"k":false}],"s":0.01}"#
        )
        #expect(id.description == "AAECAwQFBgcICQoLDA0ODw")
    }

    @Test func eventFramesCarryNoToken() throws {
        let store = SessionStore(clock: ManualSessionClock())
        let created = try store.create(username: "ada")
        let event = SessionEvent(
            kind: .ended(.logout),
            id: created.session.id,
            username: "ada",
            createdAt: created.session.createdAt,
            at: created.session.createdAt
        )
        let frame = String(decoding: EventBroadcaster.frame(for: event), as: UTF8.self)
        #expect(frame.hasPrefix("event: ended\ndata: {"))
        #expect(frame.hasSuffix("}\n\n"))
        #expect(frame.contains(#""reason":"logout""#))
        #expect(frame.contains(created.session.id.description))
        #expect(!frame.contains(created.token.rawValue))
    }
}

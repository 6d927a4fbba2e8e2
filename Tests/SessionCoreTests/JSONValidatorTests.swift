import Testing

@testable import SessionCore

struct JSONValidatorTests {
    @Test(arguments: [
        "null", "true", "false", "0", "-0", "12.5e-3", "1E+2", "\"\"", "\"a\\u00e9\\n\"", "[]", "{}",
        " {\"a\": [1, 2, {\"b\": null}], \"c\": \"d\"} ", "[[[[]]]]", "\"caf\u{e9} \u{1F600}\"",
    ])
    func acceptsValidJSON(text: String) {
        #expect(JSONValidator.isValid(Array(text.utf8)))
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1",
        "tru", "nul", "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "1 2", "{} {}", "[1 2]",
        "{\"a\":1,}", "'single'", "NaN", "\"tab\tinside\"",
    ])
    func rejectsInvalidJSON(text: String) {
        #expect(!JSONValidator.isValid(Array(text.utf8)))
    }

    @Test func rejectsInvalidUTF8() {
        #expect(!JSONValidator.isValid([0x22, 0xFF, 0x22]))  // not UTF-8 at all
        #expect(!JSONValidator.isValid([0x22, 0xC0, 0xAF, 0x22]))  // overlong
        #expect(!JSONValidator.isValid([0x22, 0xED, 0xA0, 0x80, 0x22]))  // surrogate
        #expect(!JSONValidator.isValid([0x22, 0xE2, 0x82, 0x22]))  // truncated
        #expect(JSONValidator.isValid([0x22, 0xE2, 0x82, 0xAC, 0x22]))  // €
    }

    @Test func depthIsBounded() {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(JSONValidator.isValid(Array(ok.utf8)))
        #expect(!JSONValidator.isValid(Array(deep.utf8)))
        // Hostile depth does not overflow the stack.
        #expect(!JSONValidator.isValid(Array(String(repeating: "[", count: 1_000_000).utf8)))
    }
}

/// A username as a dictionary key, compared and hashed by its UTF-8 bytes.
///
/// `String`'s own `==` and hashing follow Unicode canonical equivalence: `"Kate"` and `"\u{212A}ate"`
/// (KELVIN SIGN) are equal. The store picks a user's shard from the name's bytes, so with `String`
/// keys two such spellings would be one user when they share a shard and two users when not. Usernames are identifiers that the API returns byte for byte, so they are compared that way
/// everywhere, as the Node library compared them (`===`).
///
/// ```swift
/// var index: [UsernameKey: Int32] = [:]
/// index[UsernameKey("Kate")] = 1
/// index[UsernameKey("\u{212A}ate")]   // nil: another user
/// ```
struct UsernameKey: Hashable, Sendable {
    let name: String

    init(_ name: String) { self.name = name }

    static func == (lhs: UsernameKey, rhs: UsernameKey) -> Bool {
        lhs.name.utf8.elementsEqual(rhs.name.utf8)
    }

    func hash(into hasher: inout Hasher) {
        var name = name
        name.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

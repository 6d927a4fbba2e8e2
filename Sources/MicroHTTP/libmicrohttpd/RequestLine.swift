#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Checks on the raw request line for NUL bytes, which libmicrohttpd 0.9.75 accepts.
///
/// Every later step (the query split aside) treats the method and the target as C strings, so a NUL
/// cuts them short: `DELETE /v1/sessions<NUL>/x?confirm=true` would reach the handler as
/// `DELETE /v1/sessions`, and `DELETE<NUL>X` as `DELETE`. libmicrohttpd parses the request line in place,
/// so the method, the target and the version are consecutive in one buffer, and the distances between
/// them tell whether a NUL came earlier than the separators.
enum RequestLine {
    /// Whether the raw target held a NUL byte: its C-string length measured before libmicrohttpd
    /// modified it (`rawLength`, from the URI-log callback) stops short of the space before the HTTP
    /// version. `url` is where the target began and `version` follows that space.
    static func targetHasNUL(url: UnsafePointer<CChar>?, version: UnsafePointer<CChar>?, rawLength: Int?) -> Bool {
        guard let url, let version, let rawLength, version.pointee != 0, version > url else { return false }
        let targetEnd = version - 1  // the space, replaced by a NUL
        guard targetEnd - url <= 1 << 24 else { return false }  // not the same buffer: no conclusion
        return url + rawLength != targetEnd
    }

    /// Whether the method held a NUL byte. libmicrohttpd ends the method at the first space and the
    /// target starts after the spaces that follow, so between the method's C-string end and the target
    /// there is that space's NUL and spaces only, unless the method went on past a NUL of its own.
    static func methodHasNUL(method: UnsafePointer<CChar>?, url: UnsafePointer<CChar>?) -> Bool {
        guard let method, let url, url > method, url - method <= 1 << 16 else { return false }
        var cursor = method + strlen(method) + 1
        while cursor < url {
            if cursor.pointee != 0x20 { return true }
            cursor += 1
        }
        return false
    }

    /// Empties the query of the raw target `target` when it has more than `limit` arguments (`&`-separated
    /// parts), by ending it right after its `?`; returns whether it did. libmicrohttpd keeps about 64
    /// bytes of its connection memory per argument, and a request that exhausts that memory while its
    /// request line is parsed is never answered.
    static func dropQuery(of target: UnsafeMutablePointer<CChar>, above limit: Int) -> Bool {
        guard let question = strchr(target, Int32(UInt8(ascii: "?"))), question[1] != 0 else { return false }
        var arguments = 1
        var cursor = question + 1
        while cursor.pointee != 0 {
            if cursor.pointee == CChar(UInt8(ascii: "&")) { arguments += 1 }
            cursor += 1
        }
        guard arguments > limit else { return false }
        question[1] = 0
        return true
    }
}

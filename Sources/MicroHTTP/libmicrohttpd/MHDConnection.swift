internal import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One libmicrohttpd connection (`struct MHD_Connection *`): the request's headers and query
/// arguments, suspending and resuming, and its socket.
///
/// The pointer is valid from the request line until libmicrohttpd reports the request completed, and
/// only on the thread libmicrohttpd is processing the connection on, except for
/// ``resume()``, which may be called from any thread while the connection is suspended.
struct MHDConnection {
    let pointer: OpaquePointer

    /// The value of a request header (case-insensitive name), the first one if repeated.
    func header(_ name: String) -> String? {
        // Explicit withCString: a short (inline) Swift string passed implicitly to a C pointer
        // parameter is copied to the heap first; this way it is copied to the stack.
        name.withCString { name in
            MHD_lookup_connection_value(pointer, .HEADER_KIND, name).map { String(cString: $0) }
        }
    }

    /// Calls `body` with the bytes of a request header's value (`nil` when absent).
    func withHeader<Result, Failure: Error>(
        _ name: StaticString,
        _ body: (UnsafeBufferPointer<UInt8>?) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var value: UnsafePointer<CChar>?
        var size = 0
        // A StaticString's bytes are immortal; CChar and UInt8 may alias each other.
        let key = UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
        guard MHD_lookup_connection_value_n(pointer, .HEADER_KIND, key, name.utf8CodeUnitCount, &value, &size) == .YES,
            let value
        else { return try body(nil) }
        return try body(
            UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: size)
        )
    }

    /// Calls `body` with the decoded bytes of the first query argument named exactly `name` (`nil`
    /// when absent); the buffer points into libmicrohttpd's memory.
    func withQueryParameter<Result, Failure: Error>(
        _ name: String,
        _ body: (UnsafeRawBufferPointer?) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        // MHD_lookup_connection_value compares keys case-insensitively; query names are case-sensitive.
        // The search state lives on the stack: this runs on every request that reads a parameter.
        var name = name
        let value = name.withUTF8 { nameBytes -> UnsafeRawBufferPointer? in
            var search = QueryParameterSearch(name: nameBytes, value: nil)
            withUnsafeMutablePointer(to: &search) { searchPointer in
                _ = MHD_get_connection_values_n(
                    pointer,
                    .GET_ARGUMENT_KIND,
                    { cls, _, key, keySize, value, valueSize in
                        let search = cls!.assumingMemoryBound(to: QueryParameterSearch.self)
                        let keyBytes = UnsafeRawBufferPointer(start: key, count: keySize)
                        guard keyBytes.elementsEqual(search.pointee.name) else { return .YES }
                        search.pointee.value = UnsafeRawBufferPointer(start: value, count: valueSize)
                        return .NO
                    },
                    UnsafeMutableRawPointer(searchPointer)
                )
            }
            return search.value
        }
        return try body(value)
    }

    /// Every query argument in the order sent, decoded (bytes that are not UTF-8 become U+FFFD).
    func queryParameters() -> [(name: String, value: String)] {
        final class Collector {
            var pairs: [(name: String, value: String)] = []
        }
        let collector = Collector()
        withExtendedLifetime(collector) {
            _ = MHD_get_connection_values_n(
                pointer,
                .GET_ARGUMENT_KIND,
                { cls, _, key, keySize, value, valueSize in
                    let collector = Unmanaged<Collector>.fromOpaque(cls!).takeUnretainedValue()
                    collector.pairs.append(
                        (
                            name: String(decoding: UnsafeRawBufferPointer(start: key, count: keySize), as: UTF8.self),
                            value: String(
                                decoding: UnsafeRawBufferPointer(start: value, count: valueSize),
                                as: UTF8.self
                            )
                        )
                    )
                    return .YES
                },
                Unmanaged.passUnretained(collector).toOpaque()
            )
        }
        return collector.pairs
    }

    /// Stops libmicrohttpd from processing the connection until ``resume()``.
    func suspend() {
        MHD_suspend_connection(pointer)
    }

    /// Makes libmicrohttpd process the suspended connection again (from any thread).
    func resume() {
        MHD_resume_connection(pointer)
    }

    /// The connection's socket, or -1.
    var socket: Int32 {
        CMicroHTTPD_connection_fd(pointer)
    }

    /// Sets the socket's kernel send buffer (`SO_SNDBUF`).
    func setSendBuffer(_ bytes: Int) {
        var value = Int32(clamping: bytes)
        _ = setsockopt(socket, SOL_SOCKET, SO_SNDBUF, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The connection's record, set when it started (its socket context).
    var record: ConnectionRecord? {
        CMicroHTTPD_connection_socket_context(pointer).map {
            Unmanaged<ConnectionRecord>.fromOpaque($0).takeUnretainedValue()
        }
    }
}

/// The state of one query-argument lookup (``MHDConnection/withQueryParameter(_:_:)``).
private struct QueryParameterSearch {
    let name: UnsafeBufferPointer<UInt8>
    var value: UnsafeRawBufferPointer?
}

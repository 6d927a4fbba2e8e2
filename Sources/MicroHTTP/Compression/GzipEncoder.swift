internal import CZlib

/// A zlib deflate stream with gzip framing.
///
/// The `z_stream` is allocated once on the heap because zlib (>= 1.2.9) keeps a back pointer to it and
/// rejects a stream that moved (`state->strm != strm`). Not thread-safe; use one encoder per thread.
final class GzipEncoder {
    private let stream: UnsafeMutablePointer<z_stream>
    private var needsReset = false

    /// Creates an encoder.
    ///
    /// - Parameter level: zlib level 0...9 (1 is fastest, 9 smallest).
    /// - Throws: ``MicroHTTPError`` with code ``MicroHTTPError/Code/compressionFailed``.
    init(level: Int) throws {
        guard (0...9).contains(level) else {
            throw MicroHTTPError(code: .compressionFailed, message: "gzip level \(level) is outside 0...9")
        }
        // Set up in a local first: once `self` is fully initialised a throw would also run `deinit`,
        // which would end and free the stream a second time.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // windowBits 15 + 16: 32 KiB window with a gzip header and trailer instead of the zlib wrapper.
        let result = CZlib_deflateInit2(stream, Int32(level), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY)
        guard result == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw MicroHTTPError(code: .compressionFailed, message: "deflateInit2 failed", cause: result)
        }
        self.stream = stream
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Compresses `input` into one complete gzip member.
    func compress(_ input: [UInt8]) throws -> [UInt8] {
        guard input.count <= Int(UInt32.max) else {
            throw MicroHTTPError(code: .compressionFailed, message: "input of \(input.count) bytes is too large")
        }
        if needsReset {
            let result = deflateReset(stream)
            guard result == Z_OK else {
                throw MicroHTTPError(code: .compressionFailed, message: "deflateReset failed", cause: result)
            }
        }
        needsReset = true
        // deflateBound is large enough for a single deflate(Z_FINISH) call to finish the stream.
        let bound = Int(deflateBound(stream, uLong(input.count)))
        guard bound <= Int(UInt32.max) else {
            throw MicroHTTPError(code: .compressionFailed, message: "input of \(input.count) bytes is too large")
        }
        var result: Int32 = Z_OK
        let output = [UInt8](unsafeUninitializedCapacity: bound) { buffer, initializedCount in
            input.withUnsafeBufferPointer { source in
                stream.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                stream.pointee.avail_in = uInt(source.count)
                stream.pointee.next_out = buffer.baseAddress
                stream.pointee.avail_out = uInt(bound)
                result = deflate(stream, Z_FINISH)
                initializedCount = bound - Int(stream.pointee.avail_out)
                stream.pointee.next_in = nil
                stream.pointee.next_out = nil
            }
        }
        guard result == Z_STREAM_END else {
            throw MicroHTTPError(code: .compressionFailed, message: "deflate did not finish", cause: result)
        }
        return output
    }
}

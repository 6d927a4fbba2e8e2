/// One-shot gzip compression (RFC 1952 framing), as used for `Content-Encoding: gzip`.
public enum Gzip {
    /// Compresses `bytes` into a single gzip member.
    ///
    /// ```swift
    /// let compressed = try Gzip.compress(Array(metrics.utf8))   // level 1: fast, ~10x on Prometheus text
    /// ```
    ///
    /// - Parameters:
    ///   - bytes: The data to compress.
    ///   - level: zlib level 0...9; default 1 (fastest).
    /// - Returns: The gzip-framed data (decompressible with `gunzip`).
    /// - Throws: ``MicroHTTPError`` with code ``MicroHTTPError/Code/compressionFailed``.
    public static func compress(_ bytes: [UInt8], level: Int = 1) throws -> [UInt8] {
        try GzipEncoder(level: level).compress(bytes)
    }
}

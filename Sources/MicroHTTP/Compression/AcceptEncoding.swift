/// `Accept-Encoding` negotiation.
///
/// gzip is acceptable when the header lists `gzip` (or `x-gzip`) with a `q` that is not 0, or, when gzip
/// is not listed at all, `*` with a `q` that is not 0. An explicit `gzip;q=0` wins over `*`. A `q` that
/// cannot be parsed counts as 0.
enum AcceptEncoding {
    /// Whether the `Accept-Encoding` header value allows a gzip-encoded response.
    static func allowsGzip(_ header: String) -> Bool {
        var gzipQuality: Double?
        var wildcardQuality: Double?
        for element in header.split(separator: ",") {
            var parts = element.split(separator: ";").makeIterator()
            guard let codingPart = parts.next() else { continue }
            let coding = trimmed(codingPart).lowercased()
            guard coding == "gzip" || coding == "x-gzip" || coding == "*" else { continue }
            var quality = 1.0
            while let parameter = parts.next() {
                let text = trimmed(parameter)
                guard text.count >= 2, text.prefix(2).lowercased() == "q=" else { continue }
                quality = Double(text.dropFirst(2)) ?? 0
            }
            if coding == "*" {
                wildcardQuality = max(wildcardQuality ?? 0, quality)
            } else {
                gzipQuality = max(gzipQuality ?? 0, quality)
            }
        }
        if let gzipQuality {
            return gzipQuality > 0
        }
        return (wildcardQuality ?? 0) > 0
    }

    private static func trimmed(_ text: Substring) -> Substring {
        var result = text
        while let first = result.first, first == " " || first == "\t" {
            result.removeFirst()
        }
        while let last = result.last, last == " " || last == "\t" {
            result.removeLast()
        }
        return result
    }
}

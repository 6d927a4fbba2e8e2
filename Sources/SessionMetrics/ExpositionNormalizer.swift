/// Makes swift-prometheus's text output reproducible and strictly valid for every Prometheus parser:
/// families sorted by name, children sorted by their labels (a histogram child's lines kept
/// together and in `le` order), and the spellings `NaN`, `+Inf`, `-Inf` for special values (Swift
/// prints `nan`, `inf` and `-nan`, and `-nan` fails a whole scrape).
///
/// Works on bytes and line ranges: a scrape stays well under a millisecond of normalisation.
enum ExpositionNormalizer {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    private struct Family {
        var header: [Range<Int>] = []
        /// Child key (labels without `le`) → its lines in emitted order.
        var children: [[UInt8]: [Range<Int>]] = [:]
        var order: [[UInt8]] = []
    }

    private static let space = UInt8(ascii: " ")
    private static let newline = UInt8(ascii: "\n")
    private static let quote = UInt8(ascii: "\"")

    /// Returns the normalised exposition without the families named in `omitted`, or throws when the
    /// input is not what swift-prometheus emits (a sample before any `# TYPE`, a line without a value).
    static func normalize(_ text: [UInt8], omitting omitted: Set<[UInt8]> = []) throws(Problem) -> [UInt8] {
        var families: [[UInt8]: Family] = [:]
        var current: [UInt8]?
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count, text[end] != newline { end += 1 }
            defer { start = end + 1 }
            guard end > start else { continue }
            let line = start..<end
            if text[start] == UInt8(ascii: "#") {
                guard isHeader(text, line) else { continue }
                var nameEnd = start + 7
                while nameEnd < end, text[nameEnd] != space { nameEnd += 1 }
                let name = Array(text[(start + 7)..<nameEnd])
                current = name
                families[name, default: Family()].header.append(line)
                continue
            }
            guard let family = current else {
                throw Problem(
                    description: "sample before any # TYPE: \(String(decoding: text[line].prefix(80), as: UTF8.self))"
                )
            }
            guard let valueSpace = text[line].lastIndex(of: space) else {
                throw Problem(
                    description: "sample without value: \(String(decoding: text[line].prefix(80), as: UTF8.self))"
                )
            }
            let key = childKey(text, start..<valueSpace)
            if families[family]!.children[key] == nil { families[family]!.order.append(key) }
            families[family]!.children[key, default: []].append(line)
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 64)
        for name in families.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where !omitted.contains(name) {
            let family = families[name]!
            // HELP before TYPE, as client_golang writes them.
            let help = family.header.filter { text[$0.lowerBound + 2] == UInt8(ascii: "H") }
            for line in help + family.header.filter({ text[$0.lowerBound + 2] != UInt8(ascii: "H") }) {
                out.append(contentsOf: text[line])
                out.append(newline)
            }
            for key in family.order.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                for line in family.children[key]! {
                    let valueSpace = text[line].lastIndex(of: space)!
                    out.append(contentsOf: text[line.lowerBound...valueSpace])
                    appendCanonicalValue(text[(valueSpace + 1)..<line.upperBound], to: &out)
                    out.append(newline)
                }
            }
        }
        return out
    }

    private static func isHeader(_ text: [UInt8], _ line: Range<Int>) -> Bool {
        guard line.count > 7, text[line.lowerBound + 1] == space, text[line.lowerBound + 6] == space else {
            return false
        }
        let word = text[(line.lowerBound + 2)..<(line.lowerBound + 6)]
        return word.elementsEqual("HELP".utf8) || word.elementsEqual("TYPE".utf8)
    }

    /// The labels of a series without its `le` label (`{route="/x"}`, or empty when none is left), so
    /// that a histogram child's `_bucket`, `_sum` and `_count` lines share one key. Label values
    /// here come from closed sets without quotes or commas.
    static func childKey(_ text: [UInt8], _ series: Range<Int>) -> [UInt8] {
        guard let open = text[series].firstIndex(of: UInt8(ascii: "{")) else { return [] }
        var key: [UInt8] = []
        key.reserveCapacity(series.upperBound - open)
        var index = open
        while index < series.upperBound {
            let byte = text[index]
            let startsLabel = byte == UInt8(ascii: "{") || byte == UInt8(ascii: ",")
            if startsLabel, index + 4 < series.upperBound, text[index + 1] == UInt8(ascii: "l"),
                text[index + 2] == UInt8(ascii: "e"), text[index + 3] == UInt8(ascii: "="), text[index + 4] == quote
            {
                // Skip `le="…"` (keep a leading `{`).
                if byte == UInt8(ascii: "{") { key.append(byte) }
                var close = index + 5
                while close < series.upperBound, text[close] != quote { close += 1 }
                index = close + 1
                // `{le="x",a="b"}`: drop the comma that followed.
                if byte == UInt8(ascii: "{"), index < series.upperBound, text[index] == UInt8(ascii: ",") { index += 1 }
                continue
            }
            key.append(byte)
            index += 1
        }
        return key == Array("{}".utf8) ? [] : key
    }

    private static func appendCanonicalValue(_ value: ArraySlice<UInt8>, to out: inout [UInt8]) {
        if value.elementsEqual("nan".utf8) || value.elementsEqual("-nan".utf8) {
            out.append(contentsOf: "NaN".utf8)
        } else if value.elementsEqual("inf".utf8) || value.elementsEqual("+inf".utf8) {
            out.append(contentsOf: "+Inf".utf8)
        } else if value.elementsEqual("-inf".utf8) {
            out.append(contentsOf: "-Inf".utf8)
        } else {
            out.append(contentsOf: value)
        }
    }
}

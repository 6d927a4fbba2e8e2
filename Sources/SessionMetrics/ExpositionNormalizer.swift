/// Makes swift-prometheus's text output reproducible and strictly valid (PROMETHEUS.md §4.4):
/// families sorted by name, children sorted by their labels (a histogram child's lines kept
/// together and in `le` order), and the spellings `NaN`, `+Inf`, `-Inf` for special values (Swift
/// prints `nan`, `inf` and `-nan`, and `-nan` fails a whole scrape).
enum ExpositionNormalizer {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    private struct Family {
        var name: String
        var header: [Substring] = []
        /// Child key (labels without `le`) → lines in emitted order.
        var children: [Substring: [Substring]] = [:]
        var order: [Substring] = []
    }

    /// Returns the normalized exposition, or throws when the input is not what swift-prometheus
    /// emits (a sample before any `# TYPE`, a line without a value).
    static func normalize(_ text: [UInt8]) throws(Problem) -> [UInt8] {
        let string = String(decoding: text, as: UTF8.self)
        var families: [String: Family] = [:]
        var current: String?
        for line in string.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let name = String(line.dropFirst(7).prefix(while: { $0 != " " }))
                current = name
                families[name, default: Family(name: name)].header.append(line)
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let family = current else { throw Problem(description: "sample before any # TYPE: \(line.prefix(80))") }
            guard let space = line.lastIndex(of: " ") else { throw Problem(description: "sample without value: \(line.prefix(80))") }
            let series = line[..<space]
            let key = childKey(series)
            if families[family]!.children[key] == nil { families[family]!.order.append(key) }
            families[family]!.children[key, default: []].append(line)
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 64)
        for name in families.keys.sorted() {
            let family = families[name]!
            // HELP before TYPE, as client_golang writes them.
            for line in family.header.sorted(by: { $0.hasPrefix("# HELP") && !$1.hasPrefix("# HELP") }) {
                out.append(contentsOf: line.utf8)
                out.append(0x0A)
            }
            for key in family.order.sorted(by: { $0 < $1 }) {
                for line in family.children[key]! {
                    let space = line.lastIndex(of: " ")!
                    out.append(contentsOf: line[..<space].utf8)
                    out.append(0x20)
                    out.append(contentsOf: canonicalValue(line[line.index(after: space)...]).utf8)
                    out.append(0x0A)
                }
            }
        }
        return out
    }

    /// The series without its `le` label and without the histogram suffix, so that a histogram
    /// child's `_bucket`, `_sum` and `_count` lines share one key.
    static func childKey(_ series: Substring) -> Substring {
        guard let open = series.firstIndex(of: "{") else { return "" }
        let labels = series[open...]
        // Label values here come from closed sets without quotes or commas, so a pair ends at the
        // next quote; `le` is found where a label name starts (after `{` or `,`).
        var start: Substring.Index?
        for candidate in ["{le=\"", ",le=\""] {
            if let range = labels.firstRange(of: candidate) {
                start = labels.index(after: range.lowerBound)
                break
            }
        }
        guard var start else { return labels }
        var end = labels.index(start, offsetBy: 4)
        while end < labels.endIndex, labels[end] != "\"" { end = labels.index(after: end) }
        end = labels.index(after: end)
        if end < labels.endIndex, labels[end] == "," {
            end = labels.index(after: end)
        } else if labels[labels.index(before: start)] == "," {
            start = labels.index(before: start)
        }
        let key = String(labels[..<start]) + String(labels[end...])
        return key == "{}" ? "" : Substring(key)
    }

    static func canonicalValue(_ value: Substring) -> String {
        switch value {
        case "nan", "-nan", "NaN": "NaN"
        case "inf", "+inf", "+Inf": "+Inf"
        case "-inf", "-Inf": "-Inf"
        default: String(value)
        }
    }
}

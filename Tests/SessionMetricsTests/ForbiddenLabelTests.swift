import Testing

@testable import SessionMetrics

/// No username, id, token, IP or raw path may become a label: this scans the Swift sources, the
/// Prometheus rules and the dashboards for label names that would carry them.
struct ForbiddenLabelTests {
    static let forbidden = ["user", "username", "user_id", "session", "session_id", "token", "ip", "path", "id"]

    static var repository: String {
        "/" + String(#filePath).split(separator: "/").dropLast(3).joined(separator: "/")
    }

    static func files(under directory: String, suffixes: [String]) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var found: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name != ".", name != ".." else { continue }
            let path = directory + "/" + name
            if entry.pointee.d_type == UInt8(DT_DIR) {
                found += files(under: path, suffixes: suffixes)
            } else if suffixes.contains(where: { name.hasSuffix($0) }) {
                found.append(path)
            }
        }
        return found
    }

    @Test func noForbiddenLabelNames() throws {
        var scanned = 0
        var offenders: [String] = []
        let sources = Self.files(under: Self.repository + "/Sources", suffixes: [".swift"])
        let monitoring =
            Self.files(under: Self.repository + "/prometheus", suffixes: [".yml", ".yaml"])
            + Self.files(under: Self.repository + "/dashboards", suffixes: [".json"])
        #expect(sources.count > 10)
        for path in sources + monitoring {
            guard let text = ProcessStatus.readFile(path) else { continue }
            scanned += 1
            for label in Self.forbidden {
                // Swift label tuples ("name", value), PromQL/exposition selectors name="…", by/without clauses.
                let patterns = [
                    "(\"\(label)\", ", "{\(label)=", ",\(label)=", ", \(label)=", "by (\(label))", "by (\(label),",
                ]
                for pattern in patterns where text.contains(pattern) { offenders.append("\(path): \(pattern)") }
            }
        }
        #expect(scanned == sources.count + monitoring.count)
        #expect(offenders == [])
    }
}

#if canImport(Glibc)
import Glibc
#endif

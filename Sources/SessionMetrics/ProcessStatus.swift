#if canImport(Glibc)
import Glibc
#endif

/// The standard process metrics (client_golang's names), read from `/proc`.
///
/// Parsers take text so that tests can feed them fixture files; ``read(procRoot:)`` reads the live
/// files. A value that cannot be read is `nil` and its metric is left out (never a made-up value).
public struct ProcessStatus: Sendable, Hashable {
    /// User + system CPU time in seconds.
    public var cpuSeconds: Double?
    public var openFileDescriptors: Double?
    public var maxFileDescriptors: Double?
    public var virtualMemoryBytes: Double?
    public var virtualMemoryMaxBytes: Double?
    public var residentMemoryBytes: Double?
    /// Start time of the process since the Unix epoch, in seconds.
    public var startTimeSeconds: Double?
    public var threads: Double?

    public init() {}

    /// Fields of `/proc/<pid>/stat` that the metrics use.
    public struct Stat: Sendable, Hashable {
        public var userTicks: Double
        public var systemTicks: Double
        public var threads: Double
        public var startTicks: Double
        public var virtualBytes: Double
        public var residentPages: Double
    }

    /// Parses `/proc/<pid>/stat`. The command name may contain spaces and `)`, so fields are
    /// counted from the *last* `)`: the first field after it is field 3 (state).
    public static func parseStat(_ text: String) -> Stat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3; field N is fields[N - 3].
        func field(_ number: Int) -> Double? {
            let index = number - 3
            guard index < fields.count else { return nil }
            return Double(fields[index].trimmingNewlines)
        }
        guard let utime = field(14), let stime = field(15), let threads = field(20), let start = field(22),
            let vsize = field(23), let rss = field(24)
        else { return nil }
        return Stat(
            userTicks: utime,
            systemTicks: stime,
            threads: threads,
            startTicks: start,
            virtualBytes: vsize,
            residentPages: rss
        )
    }

    /// Parses the soft limits "Max open files" and "Max address space" of `/proc/<pid>/limits`;
    /// `unlimited` is 18446744073709551615, as procfs reports it.
    public static func parseLimits(_ text: String) -> (openFiles: Double?, addressSpace: Double?) {
        var openFiles: Double?
        var addressSpace: Double?
        for line in text.split(separator: "\n") {
            func softLimit(after prefix: String) -> Double? {
                guard line.hasPrefix(prefix) else { return nil }
                let rest = line.dropFirst(prefix.count).split(separator: " ", omittingEmptySubsequences: true)
                guard let soft = rest.first else { return nil }
                return soft == "unlimited" ? Double(UInt64.max) : Double(soft)
            }
            if let value = softLimit(after: "Max open files") { openFiles = value }
            if let value = softLimit(after: "Max address space") { addressSpace = value }
        }
        return (openFiles, addressSpace)
    }

    /// Parses `btime` (boot time, seconds since the epoch) from `/proc/stat`.
    public static func parseBootTime(_ text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count).trimmingNewlines)
        }
        return nil
    }

    /// Combines the parsed files into metric values.
    public static func make(
        stat: Stat?,
        limits: (openFiles: Double?, addressSpace: Double?),
        bootTime: Double?,
        openFileDescriptors: Double?,
        ticksPerSecond: Double,
        pageSize: Double
    ) -> ProcessStatus {
        var status = ProcessStatus()
        if let stat {
            status.cpuSeconds = (stat.userTicks + stat.systemTicks) / ticksPerSecond
            status.threads = stat.threads
            status.virtualMemoryBytes = stat.virtualBytes
            status.residentMemoryBytes = stat.residentPages * pageSize
            if let bootTime { status.startTimeSeconds = bootTime + stat.startTicks / ticksPerSecond }
        }
        status.maxFileDescriptors = limits.openFiles
        status.virtualMemoryMaxBytes = limits.addressSpace
        status.openFileDescriptors = openFileDescriptors
        return status
    }

    /// Reads the live values of this process.
    public static func read(procRoot: String = "/proc") -> ProcessStatus {
        make(
            stat: readFile("\(procRoot)/self/stat").flatMap(parseStat),
            limits: readFile("\(procRoot)/self/limits").map(parseLimits) ?? (nil, nil),
            bootTime: readFile("\(procRoot)/stat").flatMap(parseBootTime),
            openFileDescriptors: countEntries("\(procRoot)/self/fd"),
            ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))),
            pageSize: Double(sysconf(Int32(_SC_PAGESIZE)))
        )
    }

    static func readFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = Glibc.read(descriptor, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func countEntries(_ path: String) -> Double? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0))
            }
            if !isDot { count += 1 }
        }
        return Double(count)
    }
}

extension Substring {
    fileprivate var trimmingNewlines: Substring {
        var text = self
        while let last = text.last, last == "\n" || last == "\r" { text = text.dropLast() }
        return text
    }
}

// SessionCore benchmark: single-thread throughput of the store's operations, memory per session,
// listing cost, and mass expiry with a concurrent caller measuring stalls.
//
// Run (release): Benchmarks/run-core.sh, or swift run -c release --package-path Benchmarks SessionBenchmarks [--sessions N] [--users N] [--runs N]
// Figures are medians over --runs repetitions; see Benchmarks/RESULTS.md.

import MicroHTTP
import SessionCore
import SessionMetrics
import SessionServer
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: Arguments

var sessionCount = 1_000_000
var userCount = 100_000
var runs = 5
var profileValidate = false
var scrapeOnly = false
var profileCreate = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--sessions": sessionCount = Int(arguments.next() ?? "") ?? sessionCount
    case "--users": userCount = Int(arguments.next() ?? "") ?? userCount
    case "--runs": runs = Int(arguments.next() ?? "") ?? runs
    case "--profile-validate": profileValidate = true
    case "--scrape": scrapeOnly = true
    case "--profile-create": profileCreate = true
    default:
        print("usage: SessionBenchmarks [--sessions N] [--users N] [--runs N]")
        exit(2)
    }
}

// MARK: Helpers

func nowNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

func residentBytes() -> Int {
    // /proc/self/statm: size resident shared ... (pages)
    let descriptor = open("/proc/self/statm", O_RDONLY)
    guard descriptor >= 0 else { return 0 }
    defer { close(descriptor) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let count = read(descriptor, &buffer, 255)
    guard count > 0 else { return 0 }
    let fields = String(decoding: buffer[0..<count], as: UTF8.self).split(separator: " ")
    return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func format(_ value: Double) -> String {
    if value >= 1_000_000 { return String(Int((value / 10_000).rounded())).inserting(decimalAt: 2) + " M" }
    if value >= 1_000 { return String(Int((value / 10).rounded())).inserting(decimalAt: 2) + " k" }
    return String(Int(value.rounded()))
}

extension String {
    func inserting(decimalAt fromEnd: Int) -> String {
        var text = self
        while text.count <= fromEnd { text = "0" + text }
        text.insert(".", at: text.index(text.endIndex, offsetBy: -fromEnd))
        return text
    }
}

func format3(_ value: Double) -> String {
    let scaled = Int((value * 1000).rounded())
    return String(scaled).inserting(decimalAt: 3)
}

var rows: [(String, String, String)] = []
@MainActor func report(_ name: String, _ value: String, _ detail: String) {
    rows.append((name, value, detail))
    print("\(name): \(value)  (\(detail))")
}

/// Runs `body` `runs` times and returns the median of ops/s.
@MainActor func throughput(_ operations: Int, _ body: (Int) -> Void) -> (median: Double, all: [Double]) {
    var rates: [Double] = []
    for run in 0..<runs {
        let start = nowNanoseconds()
        body(run)
        let seconds = Double(nowNanoseconds() - start) / 1e9
        rates.append(Double(operations) / seconds)
    }
    return (median(rates), rates)
}

let usernames = (0..<userCount).map { "user-\($0)@example.com" }
print("SessionCore benchmark: \(sessionCount) sessions over \(userCount) users, \(runs) runs, single thread")

// MARK: Profiling aid: only validate, for `perf record`

if profileValidate {
    let store = SessionStore(configuration: .init())
    let tokens = (0..<sessionCount).map { (index) -> String in
        (try? store.create(username: usernames[index % userCount]).token.rawValue) ?? ""
    }
    let result = throughput(sessionCount) { _ in
        for token in tokens where store.validate(token: token).session == nil { fatalError("lost a session") }
    }
    print("validate: \(format(result.median))/s")
    exit(0)
}

// MARK: Profiling aid: only create, for `perf record`

if profileCreate {
    let result = throughput(sessionCount) { run in
        let store = SessionStore(configuration: .init())
        for index in 0..<sessionCount { _ = try? store.create(username: usernames[(index + run) % userCount]) }
    }
    print("create: \(format(result.median))/s")
    exit(0)
}

// MARK: Scrape cost: render time and size at 0, 100k and 1M sessions

if scrapeOnly {
    let routes = SessionAPI.routes.catalogue
    var medians: [Int: Double] = [:]
    for count in [0, 100_000, sessionCount] {
        let store = SessionStore(configuration: .init())
        for index in 0..<count { _ = try store.create(username: usernames[index % userCount]) }
        let metrics = SessionMetrics(events: store.events, routes: routes)
        var times: [Double] = []
        var body: [UInt8] = []
        for _ in 0..<max(runs * 10, 20) {
            let start = nowNanoseconds()
            body = try metrics.exposition(store.statistics())
            times.append(Double(nowNanoseconds() - start) / 1e6)
        }
        let zipped = try Gzip.compress(body, level: 1)
        medians[count] = median(times)
        report(
            "scrape render (\(count) sessions)",
            "\(format3(median(times))) ms",
            "\(body.count) B, \(zipped.count) B gzip level 1, median of \(times.count)"
        )
    }
    report(
        "scrape at \(sessionCount) / at 0",
        String(format3((medians[sessionCount] ?? 0) / (medians[0] ?? 1))),
        "ratio of medians"
    )

    // Validation throughput of a store without and a store with SessionMetrics attached (and
    // scraped between passes), alternated pass by pass in one run.
    let plainStore = SessionStore(configuration: .init())
    let instrumentedStore = SessionStore(configuration: .init())
    let instrumentation = SessionMetrics(events: instrumentedStore.events, routes: routes)
    let plainTokens = (0..<200_000).map {
        (try? plainStore.create(username: usernames[$0 % userCount]).token.rawValue) ?? ""
    }
    let instrumentedTokens = (0..<200_000).map {
        (try? instrumentedStore.create(username: usernames[$0 % userCount]).token.rawValue) ?? ""
    }
    var plain: [Double] = []
    var instrumented: [Double] = []
    for _ in 0..<(runs * 2) {
        for (store, tokens, isInstrumented) in [
            (plainStore, plainTokens, false), (instrumentedStore, instrumentedTokens, true),
        ] {
            let start = nowNanoseconds()
            for token in tokens where store.validate(token: token).session == nil { fatalError("lost a session") }
            let rate = Double(tokens.count) / (Double(nowNanoseconds() - start) / 1e9)
            if isInstrumented {
                instrumented.append(rate)
                _ = try instrumentation.exposition(instrumentedStore.statistics())
            } else {
                plain.append(rate)
            }
        }
    }
    report("validate without metrics", "\(format(median(plain)))/s", "200k sessions")
    report(
        "validate with SessionMetrics",
        "\(format(median(instrumented)))/s",
        "ratio \(format3(median(instrumented) / median(plain)))"
    )
    print("\n| benchmark | median | detail |\n|---|---:|---|")
    for (name, value, detail) in rows { print("| \(name) | \(value) | \(detail) |") }
    exit(0)
}

// MARK: Memory per session (fresh store, tokens not retained)

do {
    let before = residentBytes()
    let store = SessionStore(configuration: .init())
    for index in 0..<sessionCount { _ = try store.create(username: usernames[index % userCount]) }
    let after = residentBytes()
    let perSession = Double(after - before) / Double(sessionCount)
    report(
        "memory",
        "\(Int(perSession.rounded())) B/session",
        "RSS +\((after - before) / 1_048_576) MiB for \(sessionCount) sessions / \(userCount) users"
    )
    withExtendedLifetime(store) {}
}

// MARK: Throughput on a loaded store

let store = SessionStore(configuration: .init())
var tokens: [String] = []
tokens.reserveCapacity(sessionCount)
for index in 0..<sessionCount { tokens.append(try store.create(username: usernames[index % userCount]).token.rawValue) }
var order = Array(0..<sessionCount)
order.shuffle()

let createBatch = 200_000
let create = throughput(createBatch) { run in
    let scratch = SessionStore(configuration: .init())
    for index in 0..<createBatch { _ = try? scratch.create(username: usernames[(index + run) % userCount]) }
}
report("create", "\(format(create.median))/s", "median of \(runs) runs of \(createBatch) into a fresh store")

let validateOps = sessionCount
let validate = throughput(validateOps) { _ in
    for index in order where store.validate(token: tokens[index]).session == nil { fatalError("lost a session") }
}
report(
    "validate + slide (known)",
    "\(format(validate.median))/s",
    "median of \(runs) passes over \(validateOps) tokens, random order"
)

let checkOnly = throughput(validateOps) { _ in
    for index in order where store.validate(token: tokens[index], refresh: false).session == nil {
        fatalError("lost a session")
    }
}
report("validate, check only", "\(format(checkOnly.median))/s", "refresh=false")

let unknownTokens = (0..<100_000).map { _ in
    "usm_"
        + String(
            (0..<43).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".randomElement()! }
        )
}
let unknown = throughput(unknownTokens.count * 10) { _ in
    for _ in 0..<10 {
        for token in unknownTokens where store.validate(token: token) != .unknown { fatalError("ghost session") }
    }
}
report("validate (unknown token)", "\(format(unknown.median))/s", "well-formed random tokens")

let payload = Array(#"{"cart":[17,42],"theme":"dark","locale":"fr-FR"}"#.utf8)
let dataOps = 200_000
let setData = throughput(dataOps) { run in
    for step in 0..<dataOps {
        _ = try? store.setData(token: tokens[order[(step + run * dataOps) % sessionCount]], data: payload)
    }
}
report("set data (48 B JSON)", "\(format(setData.median))/s", "validated and stored")

let deleteOps = min(100_000, sessionCount / runs)
let delete = throughput(deleteOps) { run in
    let start = run * deleteOps
    for step in start..<start + deleteOps { _ = try? store.logout(token: tokens[order[step]]) }
}
report("delete (logout)", "\(format(delete.median))/s", "median of \(runs) × \(deleteOps) distinct sessions")

// MARK: Listing users: O(users)

for users in [10_000, 100_000] {
    let listing = SessionStore(configuration: .init())
    for index in 0..<users * 2 { _ = try listing.create(username: "list-\(index % users)") }
    var times: [Double] = []
    for _ in 0..<runs {
        let start = nowNanoseconds()
        var cursor: String?
        var listed = 0
        repeat {
            let page = try listing.users(limit: 1000, cursor: cursor)
            listed += page.items.count
            cursor = page.nextCursor
        } while cursor != nil
        precondition(listed == users)
        times.append(Double(nowNanoseconds() - start) / 1e6)
    }
    report("list all users (\(users))", "\(String(format3(median(times)))) ms", "pages of 1000, \(users * 2) sessions")
}

// MARK: Mass expiry: 100,000 sessions due in the same second, with a concurrent caller

do {
    let clock = ManualSessionClock()
    let expiring = SessionStore(configuration: .init(idleTimeout: .seconds(60)), clock: clock)
    var keep: [String] = []
    for index in 0..<100_000 { _ = try expiring.create(username: "mass-\(index % 10_000)") }
    clock.advance(by: .seconds(30))
    for index in 0..<10_000 { keep.append(try expiring.create(username: "live-\(index)").token.rawValue) }
    clock.advance(by: .seconds(31))  // the first 100,000 are past their deadline, the 10,000 are not
    let sharedKeep = keep
    let probe = StallProbe()
    let caller = Thread { [probe] in
        var index = 0
        while probe.running.load(ordering: .relaxed) {
            let start = nowNanoseconds()
            _ = expiring.validate(token: sharedKeep[index % sharedKeep.count])
            let elapsed = nowNanoseconds() - start
            if elapsed > probe.worst.load(ordering: .relaxed) { probe.worst.store(elapsed, ordering: .relaxed) }
            probe.calls.add(1, ordering: .relaxed)
            index += 1
        }
    }
    usleep(20_000)
    let start = nowNanoseconds()
    let removed = expiring.reapExpired()
    let elapsed = Double(nowNanoseconds() - start) / 1e6
    probe.running.store(false, ordering: .relaxed)
    caller.join()
    precondition(removed == 100_000, "removed \(removed)")
    report(
        "mass expiry (100k due together)",
        "\(format3(elapsed)) ms",
        "worst concurrent validate \(format3(Double(probe.worst.load(ordering: .relaxed)) / 1e6)) ms over \(probe.calls.load(ordering: .relaxed)) calls"
    )
}

// MARK: The machine's memory latency: the floor under a random lookup in a large table

/// Nanoseconds per load in a chain of dependent loads, each to a random cache line of a `bytes`-long
/// working set (a pointer chase: the next address is the loaded value, so loads cannot overlap).
func dependentLoadNanoseconds(workingSet bytes: Int) -> Double {
    let lines = bytes / 64
    var permutation = Array(0..<lines)
    permutation.shuffle()
    var next = [Int](repeating: 0, count: lines * 8)  // one Int used per 64-byte line
    for index in 0..<lines { next[permutation[index] * 8] = permutation[(index + 1) % lines] * 8 }
    let steps = 4_000_000
    var position = permutation[0] * 8
    let start = nowNanoseconds()
    next.withUnsafeBufferPointer { table in
        for _ in 0..<steps { position = table[position] }
    }
    let elapsed = Double(nowNanoseconds() - start)
    precondition(position >= 0)
    return elapsed / Double(steps)
}

for megabytes in [1, 32, 256] {
    let samples = (0..<runs).map { _ in dependentLoadNanoseconds(workingSet: megabytes << 20) }
    report(
        "dependent random load (\(megabytes) MiB working set)",
        "\(format3(median(samples))) ns",
        "pointer chase; a lookup in a large table pays this once per dependent step"
    )
}

print("\n| benchmark | median | detail |\n|---|---:|---|")
for (name, value, detail) in rows { print("| \(name) | \(value) | \(detail) |") }

/// Shared state between the benchmark and its concurrent caller thread.
final class StallProbe: Sendable {
    let worst = Atomic<UInt64>(0)
    let calls = Atomic<Int>(0)
    let running = Atomic<Bool>(true)
}

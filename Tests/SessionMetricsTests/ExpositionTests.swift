import Prometheus
import SessionCore
import Synchronization
import Testing

@testable import SessionMetrics

/// A parsed exposition: families with their TYPE and samples, for structural checks.
struct ParsedExposition {
    var types: [String: String] = [:]
    var familyOrder: [String] = []
    var samples: [(series: String, value: String)] = []

    init(_ text: String) throws {
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            #expect(!line.isEmpty, "no empty lines")
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                #expect(types[String(parts[2])] == nil, "one TYPE per family")
                types[String(parts[2])] = String(parts[3])
                familyOrder.append(String(parts[2]))
                current = String(parts[2])
            } else if line.hasPrefix("# HELP ") {
                continue
            } else {
                let space = try #require(line.lastIndex(of: " "))
                let series = String(line[..<space])
                let name = String(series.prefix { $0 != "{" })
                let family = try #require(current, "sample before TYPE")
                #expect(
                    name == family || [family + "_bucket", family + "_sum", family + "_count"].contains(name),
                    "\(name) in \(family)"
                )
                samples.append((series, String(line[line.index(after: space)...])))
            }
        }
    }

    func value(_ series: String) -> Double? {
        samples.first { $0.series == series }.flatMap { Double($0.value) }
    }
}

struct ExpositionTests {
    static func makeMetrics(clock: ManualSessionClock = ManualSessionClock()) -> (SessionStore, SessionMetrics) {
        let store = SessionStore(configuration: .init(idleTimeout: .seconds(10)), clock: clock)
        let metrics = SessionMetrics(
            events: store.events,
            build: BuildInfo(version: "1.2.3", revision: "abc123", swiftVersion: "6.3.1"),
            routes: [("/v1/session", [("GET", 200), ("DELETE", 204)]), ("/v1/sessions", [("POST", 201)])],
            includeProcessMetrics: false
        )
        return (store, metrics)
    }

    @Test func countsFollowTheStore() throws {
        let clock = ManualSessionClock()
        let (store, metrics) = Self.makeMetrics(clock: clock)
        var tokens: [String] = []
        for index in 0..<7 { tokens.append(try store.create(username: "u\(index % 5)").token.rawValue) }
        for token in tokens.prefix(3) { try store.logout(token: token) }
        _ = store.validate(token: tokens[3])
        _ = store.validate(token: "garbage")
        _ = store.validate(token: "usm_" + String(repeating: "A", count: 43))
        clock.advance(by: .seconds(6))
        _ = store.validate(token: tokens[4])
        _ = store.validate(token: tokens[5])
        clock.advance(by: .seconds(5))  // tokens[3] and tokens[6] idle past 10 s
        store.reapExpired()
        let parsed = try ParsedExposition(String(decoding: try metrics.exposition(store.statistics()), as: UTF8.self))
        #expect(parsed.value("sessiond_sessions_created_total") == 7)
        #expect(parsed.value(#"sessiond_sessions_ended_total{reason="logout"}"#) == 3)
        #expect(parsed.value(#"sessiond_sessions_ended_total{reason="idle_timeout"}"#) == 2)
        #expect(parsed.value(#"sessiond_sessions_expired_total{reason="idle_timeout"}"#) == 2)
        #expect(parsed.value(#"sessiond_sessions_expired_total{reason="absolute_timeout"}"#) == 0)
        #expect(parsed.value(#"sessiond_sessions_ended_total{reason="evicted"}"#) == 0)
        #expect(parsed.value(#"sessiond_sessions_active{store="local"}"#) == 2)
        #expect(parsed.value(#"sessiond_realtime_users{store="local"}"#) == 2)
        #expect(parsed.value(#"sessiond_users_seen{store="local",window="1m"}"#) == 5)
        #expect(parsed.value(#"sessiond_session_validations_total{result="valid"}"#) == 3)
        #expect(parsed.value(#"sessiond_session_validations_total{result="malformed"}"#) == 1)
        #expect(parsed.value(#"sessiond_session_validations_total{result="unknown"}"#) == 1)
        #expect(parsed.value("sessiond_session_duration_seconds_count") == 5)
        #expect(parsed.value(#"sessiond_session_duration_seconds_bucket{le="1.0"}"#) == 3)
        // Idle expiries end at exactly 10 s.
        #expect(parsed.value(#"sessiond_session_duration_seconds_bucket{le="10.0"}"#) == 5)
        #expect(parsed.value(#"sessiond_session_duration_seconds_bucket{le="60.0"}"#) == 5)
        #expect(parsed.value(#"sessiond_build_info{revision="abc123",swift_version="6.3.1",version="1.2.3"}"#) == 1)
        // A second scrape with no activity does not move counters.
        let again = try ParsedExposition(String(decoding: try metrics.exposition(store.statistics()), as: UTF8.self))
        #expect(again.value("sessiond_sessions_created_total") == 7)
    }

    @Test func expositionIsSortedUniqueAndWellFormed() throws {
        let (store, metrics) = Self.makeMetrics()
        _ = try store.create(username: "ada")
        metrics.recordRequest(route: "/v1/session", method: "GET", status: 401, duration: .microseconds(80))
        metrics.recordRequest(route: "/nope/raw/path", method: "BREW", status: 404, duration: .microseconds(30))
        let bytes = try metrics.exposition(store.statistics())
        #expect(bytes.last == 0x0A)
        let text = String(decoding: bytes, as: UTF8.self)
        let parsed = try ParsedExposition(text)
        #expect(parsed.familyOrder == parsed.familyOrder.sorted())
        let series = parsed.samples.map(\.series)
        #expect(Set(series).count == series.count, "no duplicate series")
        // Histograms: le increasing, +Inf equal to _count, per child.
        for (family, type) in parsed.types where type == "histogram" {
            var byChild: [String: [(Double, Double)]] = [:]
            for sample in parsed.samples where sample.series.hasPrefix(family + "_bucket") {
                let le = sample.series.firstRange(of: "le=\"").map {
                    sample.series[$0.upperBound...].prefix { $0 != "\"" }
                }!
                let child = sample.series.replacing(#"le="\#(le)""#, with: "").replacing(",}", with: "}").replacing(
                    "{}",
                    with: ""
                )
                byChild[String(child.dropFirst((family + "_bucket").count)), default: []].append(
                    (le == "+Inf" ? .infinity : Double(le)!, Double(sample.value)!)
                )
            }
            for child in byChild.keys {
                // Within a child: every bucket, then _sum, then _count.
                let lines = parsed.samples.indices.filter { index in
                    let series = parsed.samples[index].series
                    return series == family + "_sum" + child || series == family + "_count" + child
                        || (series.hasPrefix(family + "_bucket")
                            && series.replacing(/,?le="[^"]*"/, with: "").replacing("{}", with: "") == family
                                + "_bucket" + child)
                }
                let kinds = lines.map {
                    parsed.samples[$0].series.hasPrefix(family + "_bucket")
                        ? 0 : parsed.samples[$0].series.hasPrefix(family + "_sum") ? 1 : 2
                }
                #expect(kinds == kinds.sorted() && kinds.suffix(2) == [1, 2], "\(family)\(child) line order")
                #expect(lines == Array((lines.first ?? 0)...(lines.last ?? 0)), "\(family)\(child) lines contiguous")
            }
            for (child, buckets) in byChild {
                #expect(buckets.map(\.0) == buckets.map(\.0).sorted(), "\(family)\(child) le order")
                #expect(buckets.last?.0 == .infinity)
                #expect(buckets.last?.1 == parsed.value(family + "_count" + child), "\(family)\(child) +Inf == count")
            }
        }
        #expect(text.contains(#"sessiond_http_requests_total{code="401",method="GET",route="/v1/session"} 1"#))
        #expect(text.contains(#"sessiond_http_requests_total{code="404",method="OTHER",route="unmatched"} 1"#))
        #expect(text.contains(#"sessiond_http_requests_total{code="204",method="DELETE",route="/v1/session"} 0"#))
        #expect(!text.contains("/nope/raw/path"))
        #expect(text.contains(#"promhttp_metric_handler_requests_total{code="503"} 0"#))
    }

    @Test func specialValuesAreSpelledCanonically() throws {
        let (store, metrics) = Self.makeMetrics()
        let negativeNaN = -Double.nan
        metrics.registry.makeGauge(descriptor: .init(metricName: "test_nan", unitName: "", helpText: "x")).set(
            to: negativeNaN
        )
        metrics.registry.makeGauge(descriptor: .init(metricName: "test_inf", unitName: "", helpText: "x")).set(
            to: .infinity
        )
        metrics.registry.makeGauge(descriptor: .init(metricName: "test_ninf", unitName: "", helpText: "x")).set(
            to: -.infinity
        )
        let text = String(decoding: try metrics.exposition(store.statistics()), as: UTF8.self)
        #expect(text.contains("test_nan NaN\n"))
        #expect(text.contains("test_inf +Inf\n"))
        #expect(text.contains("test_ninf -Inf\n"))
        #expect(!text.contains("nan\n") && !text.contains(" inf\n"))
    }

    @Test func storeGaugesAreLeftOutWhileTheStoreCannotBeRead() throws {
        let (store, metrics) = Self.makeMetrics()
        _ = try store.create(username: "ada")
        var statistics = store.statistics()
        let readable = String(decoding: try metrics.exposition(statistics), as: UTF8.self)
        #expect(readable.contains(#"sessiond_sessions_active{store="local"} 1"#))
        statistics.storeGaugesAvailable = false
        statistics.activeSessions = 0
        let unreadable = String(decoding: try metrics.exposition(statistics), as: UTF8.self)
        for family in ["sessiond_sessions_active", "sessiond_realtime_users", "sessiond_users_seen"] {
            #expect(!unreadable.contains(family), "\(family) is shown while the store cannot be read")
        }
        // The rest of the scrape is served: counters, and the store gauges come back once readable.
        #expect(unreadable.contains("sessiond_sessions_created_total 1"))
        statistics.storeGaugesAvailable = true
        statistics.activeSessions = 1
        #expect(
            String(decoding: try metrics.exposition(statistics), as: UTF8.self).contains("sessiond_sessions_active")
        )
    }

    @Test func goldenExposition() throws {
        let (store, metrics) = Self.makeMetrics()
        _ = try store.create(username: "ada")
        let text = String(decoding: try metrics.exposition(store.statistics()), as: UTF8.self)
        let path = "/" + ProcessStatusTests.fixtures + "/Fixtures/golden.prom"
        if getenv("UPDATE_GOLDEN") != nil {
            let file = fopen(path, "w")
            fputs(text, file)
            fclose(file)
        }
        let golden = try #require(ProcessStatus.readFile(path))
        #expect(text == golden)
    }

    @Test func registeringTwiceOnOneRegistryDoesNotCrash() {
        let registry = PrometheusCollectorRegistry()
        let store = SessionStore(clock: ManualSessionClock())
        _ = SessionMetrics(
            events: store.events,
            registry: registry,
            routes: [("/v1/session", [("GET", 200)])],
            includeProcessMetrics: true
        )
        _ = SessionMetrics(
            events: store.events,
            registry: registry,
            routes: [("/v1/session", [("GET", 200)])],
            includeProcessMetrics: true
        )
    }

    @Test func countersEqualOperationsAfterAMultiThreadedRun() async throws {
        let (store, metrics) = Self.makeMetrics()
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for index in 0..<500 {
                        if let created = try? store.create(username: "w\(worker)-\(index % 20)") {
                            _ = store.validate(token: created.token.rawValue)
                            if index % 2 == 0 { _ = try? store.logout(token: created.token.rawValue) }
                        }
                        metrics.recordRequest(
                            route: "/v1/sessions",
                            method: "POST",
                            status: 201,
                            duration: .microseconds(10)
                        )
                        if index % 50 == 0 { metrics.refresh(store.statistics()) }
                    }
                }
            }
        }
        let parsed = try ParsedExposition(String(decoding: try metrics.exposition(store.statistics()), as: UTF8.self))
        #expect(parsed.value("sessiond_sessions_created_total") == 2000)
        #expect(parsed.value(#"sessiond_sessions_ended_total{reason="logout"}"#) == 1000)
        #expect(parsed.value(#"sessiond_session_validations_total{result="valid"}"#) == 2000)
        #expect(parsed.value(#"sessiond_sessions_active{store="local"}"#) == 1000)
        #expect(parsed.value(#"sessiond_http_requests_total{code="201",method="POST",route="/v1/sessions"}"#) == 2000)
        #expect(
            parsed.value(#"sessiond_http_request_duration_seconds_count{method="POST",route="/v1/sessions"}"#) == 2000
        )
    }

    @Test func latencyHasOneChildPerRouteAndMethod() throws {
        let (store, metrics) = Self.makeMetrics()
        metrics.recordRequest(route: "/v1/session", method: "GET", status: 200, duration: .microseconds(80))
        metrics.recordRequest(route: "/v1/session", method: "GET", status: 401, duration: .microseconds(90))
        metrics.recordRequest(route: "/v1/session", method: "DELETE", status: 204, duration: .milliseconds(12))
        metrics.recordRequest(route: "/v1/session", method: "PUT", status: 405, duration: .microseconds(20))
        metrics.recordRequest(route: "/nope/raw/path", method: "BREW", status: 404, duration: .microseconds(30))
        let parsed = try ParsedExposition(String(decoding: try metrics.exposition(store.statistics()), as: UTF8.self))
        func value(_ sample: String, _ labels: String) -> Double? {
            parsed.value("sessiond_http_request_duration_seconds_\(sample){\(labels)}")
        }
        // Validation and logout on one route land in different children.
        #expect(value("count", #"method="GET",route="/v1/session""#) == 2)
        #expect(value("bucket", #"method="GET",route="/v1/session",le="0.0001""#) == 2)
        #expect(value("count", #"method="DELETE",route="/v1/session""#) == 1)
        #expect(value("bucket", #"method="DELETE",route="/v1/session",le="0.01""#) == 0)
        #expect(value("bucket", #"method="DELETE",route="/v1/session",le="0.025""#) == 1)
        #expect(value("sum", #"method="DELETE",route="/v1/session""#) == 0.012)
        // Catalogue pairs and GET on unmatched exist at zero; other pairs only once used.
        #expect(value("count", #"method="POST",route="/v1/sessions""#) == 0)
        #expect(value("count", #"method="GET",route="unmatched""#) == 0)
        #expect(value("count", #"method="PUT",route="/v1/session""#) == 1)
        #expect(value("count", #"method="OTHER",route="unmatched""#) == 1)
        #expect(value("count", #"method="GET",route="/v1/sessions""#) == nil)
        let children = parsed.samples.filter { $0.series.hasPrefix("sessiond_http_request_duration_seconds_count") }
        #expect(children.count == 6)
        #expect(children.allSatisfy { $0.series.contains("method=\"") && $0.series.contains("route=\"") })
    }
}

#if canImport(Glibc)
import Glibc
#endif

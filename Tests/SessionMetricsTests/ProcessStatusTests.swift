import Prometheus
import Testing

@testable import SessionMetrics

struct ProcessStatusTests {
    static let fixtures = String(#filePath).split(separator: "/").dropLast().joined(separator: "/")

    static func fixture(_ name: String) throws -> String {
        try #require(ProcessStatus.readFile("/" + fixtures + "/Fixtures/" + name))
    }

    @Test func statIsParsedAfterTheLastParenthesis() throws {
        let stat = try #require(ProcessStatus.parseStat(try Self.fixture("stat")))
        #expect(stat.userTicks == 1234)
        #expect(stat.systemTicks == 567)
        #expect(stat.threads == 9)
        #expect(stat.startTicks == 98765)
        #expect(stat.virtualBytes == 1_234_567_890)
        #expect(stat.residentPages == 5000)
    }

    @Test func limitsAndBootTime() throws {
        let limits = ProcessStatus.parseLimits(try Self.fixture("limits"))
        #expect(limits.openFiles == 1024)
        #expect(limits.addressSpace == Double(UInt64.max))
        #expect(ProcessStatus.parseBootTime(try Self.fixture("proc-stat")) == 1_764_393_600)
    }

    @Test func valuesAreCombinedLikeClientGolang() throws {
        let status = ProcessStatus.make(
            stat: ProcessStatus.parseStat(try Self.fixture("stat")),
            limits: ProcessStatus.parseLimits(try Self.fixture("limits")),
            bootTime: ProcessStatus.parseBootTime(try Self.fixture("proc-stat")),
            openFileDescriptors: 12,
            ticksPerSecond: 100,
            pageSize: 4096
        )
        #expect(status.cpuSeconds == 18.01)  // (1234 + 567) / 100, not integer division
        #expect(status.startTimeSeconds == 1_764_393_600 + 987.65)
        #expect(status.residentMemoryBytes == 20_480_000.0)
        #expect(status.maxFileDescriptors == 1024)
        #expect(status.openFileDescriptors == 12)
    }

    @Test func startTimeIsSetOnceBecauseTheClockMayStep() {
        let registry = PrometheusCollectorRegistry()
        let gauges = ProcessGauges(registry: registry)
        var cpu = 0.0
        var startTimeSet = false
        var status = ProcessStatus()
        status.startTimeSeconds = 1_000
        gauges.update(status, lastCPU: &cpu, startTimeSet: &startTimeSet)
        status.startTimeSeconds = 1_005  // /proc/stat's boot time moved with a step of the wall clock
        gauges.update(status, lastCPU: &cpu, startTimeSet: &startTimeSet)
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let text = String(decoding: buffer, as: UTF8.self)
        #expect(text.contains("process_start_time_seconds 1000"))
        #expect(!text.contains("process_start_time_seconds 1005"))
    }

    @Test func garbageIsNotGuessed() {
        #expect(ProcessStatus.parseStat("no parenthesis here") == nil)
        #expect(ProcessStatus.parseStat("1 (x) S 1 2") == nil)
        #expect(ProcessStatus.parseBootTime("cpu 1 2 3") == nil)
        let status = ProcessStatus.make(
            stat: nil,
            limits: (nil, nil),
            bootTime: nil,
            openFileDescriptors: nil,
            ticksPerSecond: 100,
            pageSize: 4096
        )
        #expect(status == ProcessStatus())
    }

    @Test func liveValuesAreSane() throws {
        let status = ProcessStatus.read()
        let start = try #require(status.startTimeSeconds)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        #expect(abs(Double(now.tv_sec) - start) < 3600)
        #expect(try #require(status.openFileDescriptors) >= 3)
        #expect(try #require(status.residentMemoryBytes) > 1_000_000)
        #expect(try #require(status.cpuSeconds) > 0)
    }
}

#if canImport(Glibc)
import Glibc
#endif

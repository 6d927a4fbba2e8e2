import Prometheus

/// The `process_*` metrics on a registry, with client_golang's names and help strings.
struct ProcessGauges: Sendable {
    let cpu: Counter
    let openFDs: Gauge
    let maxFDs: Gauge
    let virtualMemory: Gauge
    let virtualMemoryMax: Gauge
    let residentMemory: Gauge
    let startTime: Gauge
    let threads: Gauge

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
        }
        cpu = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "process_cpu_seconds_total",
                unitName: "",
                helpText: "Total user and system CPU time spent in seconds."
            )
        )
        openFDs = gauge("process_open_fds", "Number of open file descriptors.")
        maxFDs = gauge("process_max_fds", "Maximum number of open file descriptors.")
        virtualMemory = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
        virtualMemoryMax = gauge(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes."
        )
        residentMemory = gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
        startTime = gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
        threads = gauge("process_threads", "Number of OS threads in the process.")
    }

    /// Sets the gauges; CPU time is a counter advanced by its increase since the last reading.
    ///
    /// The start time is set from the first reading only: it is derived from the boot time in
    /// `/proc/stat`, which moves whenever the wall clock is stepped (NTP, a resumed VM), and every such
    /// move would look like a restart to `changes(process_start_time_seconds[30m])`
    /// (SessiondRestarting) and the dashboard's restart annotations.
    func update(_ status: ProcessStatus, lastCPU: inout Double, startTimeSet: inout Bool) {
        if let seconds = status.cpuSeconds, seconds > lastCPU {
            cpu.increment(by: seconds - lastCPU)
            lastCPU = seconds
        }
        if let value = status.openFileDescriptors { openFDs.set(to: value) }
        if let value = status.maxFileDescriptors { maxFDs.set(to: value) }
        if let value = status.virtualMemoryBytes { virtualMemory.set(to: value) }
        if let value = status.virtualMemoryMaxBytes { virtualMemoryMax.set(to: value) }
        if let value = status.residentMemoryBytes { residentMemory.set(to: value) }
        if !startTimeSet, let value = status.startTimeSeconds {
            startTime.set(to: value)
            startTimeSet = true
        }
        if let value = status.threads { threads.set(to: value) }
    }
}

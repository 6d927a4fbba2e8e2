import Prometheus

extension PrometheusCollectorRegistry {
    /// A gauge of the catalogue: no unit suffix, with help text and (optionally) fixed labels.
    func catalogueGauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        return labels.isEmpty ? makeGauge(descriptor: descriptor) : makeGauge(descriptor: descriptor, labels: labels)
    }

    /// A counter of the catalogue: no unit suffix, with help text and (optionally) fixed labels.
    func catalogueCounter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        return labels.isEmpty
            ? makeCounter(descriptor: descriptor) : makeCounter(descriptor: descriptor, labels: labels)
    }
}

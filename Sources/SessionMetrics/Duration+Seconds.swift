extension Duration {
    /// The duration in seconds, as Prometheus records it.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

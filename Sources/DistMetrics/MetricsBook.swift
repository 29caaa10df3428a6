import CoreMetrics
import Prometheus

/// What an instance publishes for Prometheus, through swift-metrics' API onto a registry of
/// its own (no process-wide bootstrap: each book, and each test, has its registry).
///
/// The data plane's counters are totals its workers keep: ``total(_:_:_:)`` turns each into a
/// Prometheus counter by adding what it grew since the last publication; a total that went
/// down (a counter another instance restarted) adds nothing, and the counter stays monotonic.
/// A book is filled from one thread (the main lcore, or the controller's event loop); the
/// registry it writes is read by the HTTP server's thread, under the registry's own lock.
public final class MetricsBook: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    struct Key: Hashable {
        var name: String
        var labels: [String]
    }
    var counters: [Key: (counter: CoreMetrics.Counter, last: UInt64)] = [:]
    var gauges: [Key: CoreMetrics.Gauge] = [:]
    var timers: [Key: CoreMetrics.Timer] = [:]

    /// `buckets`: the upper bounds (seconds) of the histograms ``duration(_:_:seconds:)`` feeds.
    public init(buckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = buckets.map { .nanoseconds(Int64($0 * 1e9)) }
        self.factory = factory
    }

    static func key(_ name: String, _ labels: [(String, String)]) -> Key {
        Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
    }

    /// Counter `name` (with `labels`) follows the total `value`.
    public func total(_ name: String, _ labels: [(String, String)] = [], _ value: UInt64) {
        let k = Self.key(name, labels)
        guard let entry = counters[k] else {
            let counter = CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
            counter.increment(by: Int64(clamping: value))
            counters[k] = (counter, value)
            return
        }
        if value > entry.last { entry.counter.increment(by: Int64(clamping: value - entry.last)) }
        counters[k] = (entry.counter, max(value, entry.last))
    }

    /// Gauge `name` (with `labels`) reads `value`.
    public func level(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        let k = Self.key(name, labels)
        let gauge = gauges[k] ?? CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
        gauges[k] = gauge
        gauge.record(value)
    }

    /// One observation of histogram `name` (with `labels`), a duration in seconds.
    public func duration(_ name: String, _ labels: [(String, String)] = [], seconds: Double) {
        let k = Self.key(name, labels)
        let timer = timers[k] ?? CoreMetrics.Timer(label: name, dimensions: labels, factory: factory)
        timers[k] = timer
        timer.recordNanoseconds(Int64(clamping: UInt64(max(0, min(seconds, 1e9)) * 1e9)))
    }

    /// The Prometheus text exposition of everything published so far.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}

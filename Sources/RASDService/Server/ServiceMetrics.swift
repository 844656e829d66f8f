/// A log-linear latency histogram: 16 buckets per power of two, so a percentile read from it is
/// within about 3% of the true value, in 4.7 KiB whatever the number of samples.
struct LatencyHistogram: Sendable {
    private static let subBits = 4
    private static let sub = 1 << subBits
    /// Values up to 2^40 ns (18 minutes); larger ones land in the last bucket.
    private static let maxExponent = 40
    static let bucketCount = sub + (maxExponent - subBits + 1) * sub

    private var counts: [UInt64] = []
    private(set) var count: UInt64 = 0
    private(set) var sum: UInt64 = 0
    private(set) var max: UInt64 = 0

    @inline(__always)
    static func bucket(_ value: UInt64) -> Int {
        if value < UInt64(sub) { return Int(value) }
        let exponent = min(63 - value.leadingZeroBitCount, maxExponent)
        let mantissa = Int(truncatingIfNeeded: value >> UInt64(exponent - subBits)) & (sub - 1)
        return sub + (exponent - subBits) * sub + mantissa
    }

    /// The smallest value of a bucket and its width.
    static func range(ofBucket index: Int) -> (lower: Double, width: Double) {
        if index < sub { return (Double(index), 1) }
        let exponent = (index - sub) / sub + subBits
        let mantissa = (index - sub) % sub
        let width = Double(UInt64(1) << UInt64(exponent - subBits))
        return (Double(sub + mantissa) * width, width)
    }

    mutating func record(_ nanoseconds: UInt64) {
        if counts.isEmpty { counts = [UInt64](repeating: 0, count: Self.bucketCount) }
        counts[Self.bucket(nanoseconds)] += 1
        count += 1
        sum &+= nanoseconds
        if nanoseconds > max { max = nanoseconds }
    }

    mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 else { return }
        if counts.isEmpty { counts = [UInt64](repeating: 0, count: Self.bucketCount) }
        for i in other.counts.indices { counts[i] += other.counts[i] }
        count += other.count
        sum &+= other.sum
        max = Swift.max(max, other.max)
    }

    /// The value below which a share `q` of the samples lie (a bucket's midpoint, at most the
    /// largest sample), in nanoseconds.
    func quantile(_ q: Double) -> Double {
        guard count > 0 else { return 0 }
        let rank = Swift.max(1, UInt64((Double(count) * q).rounded(.up)))
        var seen: UInt64 = 0
        for i in counts.indices {
            seen += counts[i]
            if seen >= rank {
                let (lower, width) = Self.range(ofBucket: i)
                return Swift.min(lower + width / 2, Double(max))
            }
        }
        return Double(max)
    }

    /// Percentiles in microseconds.
    var percentiles: ServiceStats.Percentiles {
        ServiceStats.Percentiles(
            p50: quantile(0.5) / 1000, p90: quantile(0.9) / 1000, p99: quantile(0.99) / 1000,
            p999: quantile(0.999) / 1000, max: Double(max) / 1000,
            mean: count == 0 ? 0 : Double(sum) / Double(count) / 1000)
    }
}

/// Counters of some requests: per message type, per error code.
struct MetricsSnapshot: Sendable {
    struct PerType: Sendable {
        var count = 0
        var errors = 0
        var latency = LatencyHistogram()
    }

    /// Indexed by ``slot(_:)``.
    var perType = [PerType](repeating: PerType(), count: MessageType.requests.count + 1)
    var errors: [UInt16: Int] = [:]
    var retrievals = 0
    var timeouts = 0

    /// The slot of a request type; unknown types share the last one.
    @inline(__always)
    static func slot(_ type: MessageType) -> Int {
        switch type {
        case .hello: return 0
        case .list: return 1
        case .stats: return 2
        case .reload: return 3
        case .retrieve: return 4
        case .retrieveBatch: return 5
        case .treeFuse: return 6
        case .treeAcceptGreedy: return 7
        case .treeAcceptSampling: return 8
        default: return 9
        }
    }

    static func name(ofSlot slot: Int) -> String {
        slot < MessageType.requests.count ? MessageType.requests[slot].name : "unknown"
    }

    /// Requests answered so far, of every type.
    var answeredRequests: Int { perType.reduce(0) { $0 + $1.count } }

    mutating func merge(_ other: MetricsSnapshot) {
        for i in perType.indices {
            perType[i].count += other.perType[i].count
            perType[i].errors += other.perType[i].errors
            perType[i].latency.merge(other.perType[i].latency)
        }
        for (code, n) in other.errors { errors[code, default: 0] += n }
        retrievals += other.retrievals
        timeouts += other.timeouts
    }
}

/// The counters of one connection: written by its thread, read by STATS. Each connection has
/// its own lock, so recording a request never contends with other connections.
final class ConnectionMetrics: Sendable {
    let counters = Locked(MetricsSnapshot())

    @inline(__always)
    func record(_ type: MessageType, nanoseconds: UInt64, error: ServiceError.Code?, retrievals: Int) {
        counters.withLock { s in
            let slot = MetricsSnapshot.slot(type)
            s.perType[slot].count += 1
            s.perType[slot].latency.record(nanoseconds)
            s.retrievals += retrievals
            if let error {
                s.perType[slot].errors += 1
                s.errors[error.rawValue, default: 0] += 1
            }
        }
    }

    func recordConnectionError(_ code: ServiceError.Code) {
        counters.withLock { $0.errors[code.rawValue, default: 0] += 1 }
    }

    func recordTimeout() {
        counters.withLock { $0.timeouts += 1 }
    }
}

/// The daemon's counters: live connections' plus those of closed connections.
final class ServiceMetrics: Sendable {
    struct ConnectionCounts: Sendable {
        var open = 0
        var accepted = 0
        var rejected = 0
    }

    private let retired = Locked(MetricsSnapshot())
    private let live = Locked([ObjectIdentifier: ConnectionMetrics]())
    let connections = Locked(ConnectionCounts())
    let reloads = Locked(ServiceStats.Reloads(requests: 0, reopened: 0, failures: 0))
    /// Errors outside any connection's counters (refused connections).
    let unattached = ConnectionMetrics()

    func register(_ metrics: ConnectionMetrics) {
        live.withLock { $0[ObjectIdentifier(metrics)] = metrics }
    }

    func retire(_ metrics: ConnectionMetrics) {
        let final = metrics.counters.withLock { $0 }
        // Both under the live lock (taken before the retired one, as in `snapshot`), so that a
        // snapshot counts a closing connection exactly once.
        live.withLock { connections in
            retired.withLock { $0.merge(final) }
            connections[ObjectIdentifier(metrics)] = nil
        }
    }

    func snapshot() -> MetricsSnapshot {
        live.withLock { connections in
            var total = retired.withLock { $0 }
            for metrics in connections.values { total.merge(metrics.counters.withLock { $0 }) }
            total.merge(unattached.counters.withLock { $0 })
            return total
        }
    }
}

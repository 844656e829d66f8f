import Dispatch
import Foundation
import RASDDatastore
import RASDTrees

/// Measurements of the retrieval service against in-process retrieval (`rasd-index bench
/// service`). Every answer the daemon returns is checked against the in-process answer.
public enum ServiceBenchmark {
    /// Per-query round-trip latency through the daemon beside in-process latency.
    public struct LatencyComparison: Codable, Sendable {
        public var queries: Int
        public var runs: Int
        /// In process (`Datastore.retrieve` with a reused workspace), per-query medians.
        public var inProcess: LatencySummary
        /// Through the daemon (one client, one request at a time), per-query medians.
        public var daemon: LatencySummary
        /// Daemon answers that differ from the in-process ones (must be 0).
        public var mismatches: Int
    }

    /// Times every query in process and through `client`, interleaved query by query (so both
    /// see the same machine noise), `runs` passes; reports the distributions of per-query medians.
    public static func compareLatency(
        datastore: Datastore, client: RetrievalClient, name: String, queries: [[UInt32]],
        parameters: RetrievalParameters, runs: Int
    ) throws -> LatencyComparison {
        var workspace = RetrievalWorkspace()
        var local = CandidateTrie.empty, remote = CandidateTrie.empty
        var inProcess = [[Double]](repeating: [], count: queries.count)
        var daemon = [[Double]](repeating: [], count: queries.count)
        var mismatches = 0
        // One untimed pass warms both sides (page cache, connection thread, buffers).
        for q in queries {
            try datastore.retrieve(context: q, parameters: parameters, workspace: &workspace, into: &local)
            try client.retrieve(datastore: name, context: q, parameters: parameters, into: &remote)
        }
        for run in 0..<max(1, runs) {
            for (i, q) in queries.enumerated() {
                // Alternate which goes first, so neither always runs on a cache the other warmed.
                for side in (run + i) % 2 == 0 ? [0, 1] : [1, 0] {
                    let start = DispatchTime.now().uptimeNanoseconds
                    if side == 0 {
                        try datastore.retrieve(context: q, parameters: parameters, workspace: &workspace, into: &local)
                        inProcess[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
                    } else {
                        try client.retrieve(datastore: name, context: q, parameters: parameters, into: &remote)
                        daemon[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
                    }
                }
                if local != remote { mismatches += 1 }
            }
        }
        func medians(_ t: [[Double]]) -> [Double] { t.map { $0.sorted()[$0.count / 2] } }
        return LatencyComparison(
            queries: queries.count, runs: max(1, runs), inProcess: LatencySummary(samples: medians(inProcess)),
            daemon: LatencySummary(samples: medians(daemon)), mismatches: mismatches)
    }

    /// Closed-loop load: `clients` concurrent clients, each with `depth` requests in flight.
    public struct Throughput: Codable, Sendable {
        public var clients: Int
        public var depth: Int
        public var seconds: Double
        public var requests: Int
        public var perSecond: Double
        /// Per-request latency from send to answer, microseconds.
        public var latency: LatencySummary
        public var mismatches: Int
    }

    /// Runs `clients` clients for `seconds`, each cycling through `queries` from its own offset
    /// and keeping `depth` requests in flight; checks every answer against `expected`.
    public static func throughput(
        socketPath: String, name: String, queries: [[UInt32]], expected: [CandidateTrie],
        parameters: RetrievalParameters, clients: Int, depth: Int, seconds: Double
    ) throws -> Throughput {
        let results = try onThreads(clients) { index -> (Int, [Double], Int) in
            let client = try RetrievalClient(socketPath: socketPath, clientName: "bench \(index)")
            var answer = CandidateTrie.empty
            var latencies: [Double] = []
            latencies.reserveCapacity(Int(seconds * 50_000))
            var sentAt = [UInt64](repeating: 0, count: depth)
            var next = index * queries.count / max(clients, 1)
            var mismatches = 0, count = 0
            let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
            while DispatchTime.now().uptimeNanoseconds < end {
                var batch: [Int] = []
                for k in 0..<depth {
                    let q = next % queries.count
                    next += 1
                    batch.append(q)
                    sentAt[k] = DispatchTime.now().uptimeNanoseconds
                    try client.sendRetrieve(datastore: name, context: queries[q], parameters: parameters)
                    if depth == 1 { try client.flush() }
                }
                try client.flush()
                for (k, q) in batch.enumerated() {
                    try client.receiveRetrieve(into: &answer)
                    latencies.append(Double(DispatchTime.now().uptimeNanoseconds - sentAt[k]) / 1000)
                    if answer != expected[q] { mismatches += 1 }
                    count += 1
                }
            }
            return (count, latencies, mismatches)
        }
        let requests = results.reduce(0) { $0 + $1.0 }
        return Throughput(
            clients: clients, depth: depth, seconds: seconds, requests: requests, perSecond: Double(requests) / seconds,
            latency: LatencySummary(samples: results.flatMap(\.1)), mismatches: results.reduce(0) { $0 + $1.2 })
    }

    /// The same closed loop in process: `threads` threads calling `Datastore.retrieve`.
    public static func inProcessThroughput(
        datastore: Datastore, queries: [[UInt32]], parameters: RetrievalParameters, threads: Int, seconds: Double
    ) throws -> Throughput {
        let results = try onThreads(threads) { index -> (Int, [Double]) in
            var workspace = RetrievalWorkspace()
            var answer = CandidateTrie.empty
            var latencies: [Double] = []
            var next = index * queries.count / max(threads, 1)
            let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
            while DispatchTime.now().uptimeNanoseconds < end {
                let start = DispatchTime.now().uptimeNanoseconds
                try datastore.retrieve(context: queries[next % queries.count], parameters: parameters, workspace: &workspace, into: &answer)
                latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
                next += 1
            }
            return (latencies.count, latencies)
        }
        let requests = results.reduce(0) { $0 + $1.0 }
        return Throughput(
            clients: threads, depth: 1, seconds: seconds, requests: requests, perSecond: Double(requests) / seconds,
            latency: LatencySummary(samples: results.flatMap(\.1)), mismatches: 0)
    }

    /// Runs `body` on `count` threads at once and returns their results in order.
    private static func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let results = Locked([Result<T, Error>?](repeating: nil, count: count))
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                let r = Result { try body(index) }
                results.withLock { $0[index] = r }
                group.leave()
            }
            thread.start()
        }
        group.wait()
        return try results.withLock { $0 }.map { result in
            guard let result else { throw ServiceError(.disconnected, "a benchmark thread did not finish") }
            return try result.get()
        }
    }
}

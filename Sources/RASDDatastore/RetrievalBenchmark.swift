import Dispatch
import Foundation
import RASDTrees

/// A retrieval benchmark query: a context and the tokens that truly followed it.
public struct BenchmarkQuery: Codable, Sendable {
    /// The context.
    public var context: [UInt32]
    /// The true continuation (for oracle acceptance).
    public var next: [UInt32]
    /// A label, such as the domain the query came from.
    public var domain: String?

    public init(context: [UInt32], next: [UInt32], domain: String? = nil) {
        self.context = context
        self.next = next
        self.domain = domain
    }

    /// Reads JSON lines of `{"context": [...], "next": [...], "domain": "..."}`.
    public static func load(path: String) throws -> [BenchmarkQuery] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw DatastoreError(.notFound, path: path, "cannot read the query file")
        }
        var out: [BenchmarkQuery] = []
        let decoder = JSONDecoder()
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let q = try? decoder.decode(BenchmarkQuery.self, from: Data(line.utf8)) else {
                throw DatastoreError(.badInput, path: path, "line \(i + 1) is not {\"context\": [...], \"next\": [...]}")
            }
            out.append(q)
        }
        return out
    }

    /// Acceptance of a trie under the oracle: one plus the longest prefix of `next` that is a
    /// path from the root (the bonus token counts, as in Spec-Bench).
    public func oracleAcceptance(_ trie: CandidateTrie) -> Int {
        var node: Int32 = -1
        var accepted = 0
        search: for token in next {
            for i in 0..<trie.count where trie.parents[i] == node && trie.tokens[i] == token {
                node = Int32(i)
                accepted += 1
                continue search
            }
            break
        }
        return accepted + 1
    }
}

/// Latency statistics of a set of timed runs, in microseconds.
public struct LatencySummary: Sendable, Codable {
    public var count: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var mean: Double
    public var max: Double

    /// Summarises `samples` (microseconds).
    public init(samples: [Double]) {
        let sorted = samples.sorted()
        func quantile(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
        }
        count = sorted.count
        p50 = quantile(0.5)
        p90 = quantile(0.9)
        p99 = quantile(0.99)
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        max = sorted.last ?? 0
    }
}

/// Results of timing retrieval over a query set.
public struct RetrievalBenchmarkResult: Sendable, Codable {
    /// Per-query latency of the full answer, single thread (median of `runs` passes per query).
    public var latency: LatencySummary
    /// Mean oracle acceptance by domain ("all" for every query).
    public var acceptance: [String: Double]
    /// Mean match length.
    public var meanMatchLength: Double
    /// Mean trie size.
    public var meanNodes: Double
}

extension Datastore {
    /// Times `retrieve` on every query, `runs` times each in interleaved passes, and reports the
    /// per-query median latency distribution, the oracle acceptance and the answer sizes.
    ///
    /// Passes go through the whole query set before repeating a query, so the page cache and the
    /// CPU caches see a realistic mix rather than one query's hot lines.
    public func benchmark(queries: [BenchmarkQuery], parameters: RetrievalParameters, runs: Int) throws -> RetrievalBenchmarkResult {
        var workspace = RetrievalWorkspace()
        var answer = CandidateTrie.empty
        var times = [[Double]](repeating: [], count: queries.count)
        var acceptance: [String: (Double, Int)] = [:]
        var matchTotal = 0, nodeTotal = 0
        for run in 0..<max(1, runs) {
            for (i, q) in queries.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                try retrieve(context: q.context, parameters: parameters, workspace: &workspace, into: &answer)
                times[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
                if run == 0 {
                    let a = Double(q.oracleAcceptance(answer))
                    var keys = ["all"]
                    if let d = q.domain, d != "all" { keys.append(d) }
                    for key in keys {
                        let old = acceptance[key] ?? (0, 0)
                        acceptance[key] = (old.0 + a, old.1 + 1)
                    }
                    matchTotal += answer.matchLength
                    nodeTotal += answer.count
                }
            }
        }
        let medians = times.map { t in t.sorted()[t.count / 2] }
        let n = Double(max(1, queries.count))
        return RetrievalBenchmarkResult(
            latency: LatencySummary(samples: medians),
            acceptance: acceptance.mapValues { $0.0 / Double($0.1) },
            meanMatchLength: Double(matchTotal) / n, meanNodes: Double(nodeTotal) / n)
    }
}

import Foundation
import RASDModel
import RASDTrees

/// How many speculative nodes a decode step verifies.
public enum TreeBudget: Sendable, Equatable, CustomStringConvertible {
    /// Always this many nodes (fewer when the candidates run out).
    case fixed(Int)
    /// Chosen every step from the engine's verify-cost curve and the acceptance observed so far
    /// in the request, up to `maximum` nodes.
    case adaptive(maximum: Int)

    public var description: String {
        switch self {
        case .fixed(let n): return "fixed \(n)"
        case .adaptive(let m): return "adaptive ≤ \(m)"
        }
    }

    /// The most nodes a step may verify.
    public var maximum: Int {
        switch self {
        case .fixed(let n): return n
        case .adaptive(let m): return m
        }
    }
}

/// Chooses each step's tree size so that verification time buys the most accepted tokens.
///
/// A fused tree comes in ranking order, so its first `k` nodes are the best `k`-node tree. A
/// node's score estimates the probability that the target accepts its whole path; the
/// controller calibrates those scores against what the target actually accepted in this request
/// (per kind of source and per score band, starting from the score itself as the prior). With
/// `p(i)` the calibrated probability of node `i`, a `k`-node tree emits `1 + Σ_{i<k} p(i)`
/// tokens in expectation and costs `cost(k + 1)` single steps (the pending token is a row too),
/// so the step verifies the `k` that maximises tokens per unit of time — no nodes at all (a
/// plain step) when no candidate pays for itself. Then the same machinery serves a CPU, where
/// every node costs real time, and a GPU, where a wide tree is nearly free.
struct BudgetController {
    let budget: TreeBudget
    let curve: VerifyCostCurve?
    private var hits = [Double](repeating: 0, count: Self.classes * Self.bands)
    private var trials = [Double](repeating: 0, count: Self.classes * Self.bands)
    /// The sizes chosen in the last steps (most recent last), for ``draftBudget``.
    private var recentChoices: [Int] = []

    static let classes = 4
    static let bands = 16
    /// Weight of the prior, in pseudo-observations.
    static let priorWeight = 2.0

    init(budget: TreeBudget, curve: VerifyCostCurve?) {
        self.budget = budget
        self.curve = curve
    }

    /// Forget the observations (a new request).
    mutating func reset() {
        for i in hits.indices { hits[i] = 0; trials[i] = 0 }
        recentChoices.removeAll()
    }

    /// Nodes to ask a model drafter for. Growing a draft tree costs a head call per level, so
    /// with an adaptive budget the drafter grows about what verification will use: twice the
    /// largest size chosen in the last 4 steps (room to grow), at least 6 nodes, at most the
    /// maximum. A fixed budget is drafted in full.
    var draftBudget: Int {
        switch budget {
        case .fixed(let n):
            return n
        case .adaptive(let maximum):
            return min(maximum, max(4, 2 * (recentChoices.max() ?? 2)))
        }
    }

    private static func slot(score: Float, sources: TokenSources) -> Int {
        let kind = sources.contains(.draft) ? 0 : sources.contains(.datastore) && sources.contains(.context) ? 1 : sources.contains(.datastore) ? 2 : 3
        let band = score > 0 ? min(bands - 1, max(0, Int(-log2(Double(score))))) : bands - 1
        return kind * bands + band
    }

    /// Calibrated acceptance probability of a node.
    func probability(score: Float, sources: TokenSources) -> Double {
        let s = Self.slot(score: score, sources: sources)
        let prior = Double(min(max(score, 0), 1))
        return (hits[s] + Self.priorWeight * prior) / (trials[s] + Self.priorWeight)
    }

    /// Nodes to verify from `tree` (in ranking order).
    func choose(for tree: TokenTree) -> Int {
        let available = min(tree.count, budget.maximum)
        switch budget {
        case .fixed:
            return available
        case .adaptive:
            guard let curve, available > 0 else { return available }
            var expected = 1.0
            var best = 0
            var bestRate = 1.0 / curve.relativeCost(ofTreeSize: 1)
            for k in 1...available {
                expected += probability(score: tree.scores[k - 1], sources: tree.sources[k - 1])
                let rate = expected / curve.relativeCost(ofTreeSize: k + 1)
                if rate > bestRate {
                    bestRate = rate
                    best = k
                }
            }
            return best
        }
    }

    /// Records which of the first `verified` nodes of `tree` the target accepted.
    mutating func record(tree: TokenTree, verified: Int, accepted: Set<Int32>) {
        recentChoices.append(verified)
        if recentChoices.count > 4 { recentChoices.removeFirst() }
        for i in 0..<verified {
            let s = Self.slot(score: tree.scores[i], sources: tree.sources[i])
            trials[s] += 1
            if accepted.contains(Int32(i)) { hits[s] += 1 }
        }
    }
}

/// Verify-cost curves measured once per engine configuration and kept in rasd's cache.
public enum VerifyCostCurveCache {
    /// The cached curve for this model, thread count and kernel path, measuring it (a few seconds)
    /// when absent. `log` hears about a measurement.
    public static func curve(
        model: LlamaModel, threads: Int, kernels: KernelPath, cacheDirectory: String, log: ((String) -> Void)? = nil
    ) throws -> VerifyCostCurve {
        let key = "\(URL(fileURLWithPath: model.path).lastPathComponent)-\(model.fileSize)-t\(threads)-\(kernels.rawValue)"
        let file = cacheDirectory + "/cost-curves/" + key + ".json"
        if let data = FileManager.default.contents(atPath: file), let curve = try? JSONDecoder().decode(VerifyCostCurve.self, from: data) {
            return curve
        }
        log?("measuring the verify-cost curve of this engine (once; cached in \(file))")
        // A context of typical length; the curve barely depends on it at this model size.
        let context = (0..<256).map { UInt32(($0 * 31 + 7) % model.config.vocabularySize) }
        let session = try InferenceSession(model: model, capacity: 512, threads: threads, kernels: kernels)
        let curve = try VerifyCostCurve.measure(session: session, context: context, sizes: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64], repeats: 3)
        try? FileManager.default.createDirectory(atPath: cacheDirectory + "/cost-curves", withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(curve) { try? data.write(to: URL(fileURLWithPath: file), options: .atomic) }
        return curve
    }
}

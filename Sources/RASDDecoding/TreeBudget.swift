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
/// A node's score estimates the probability that the target accepts its whole path; the
/// controller calibrates those scores against what the target actually accepted (per kind of
/// source and per score band, starting from the score itself as the prior; see
/// ``AcceptanceCalibration`` for how earlier requests count) and orders the nodes best first by
/// that probability, parents first, so that the first `k` nodes are the best `k`-node tree.
/// With `p(i)` the calibrated probability of the `i`-th node in that order, a `k`-node tree
/// emits `1 + Σ_{i<k} p(i)` tokens in expectation and costs `cost(k + 1)` single steps at the
/// current context length (the pending token is a row too), so the step verifies the `k` that
/// maximises tokens per unit of time — no nodes at all (a plain step) when no candidate pays
/// for itself; plus, now and then, one node whose band has gone untried. Then the same
/// machinery serves a CPU, where every node costs real time, and a GPU, where a wide tree is
/// nearly free.
struct BudgetController {
    let budget: TreeBudget
    let costs: VerifyCostModel?
    /// What the target accepted, this request and (discounted) earlier ones.
    private(set) var calibration: AcceptanceCalibration
    /// The sizes chosen in the last steps (most recent last), for ``draftBudget``.
    private var recentChoices: [Int] = []
    /// Steps since ``choose(from:context:)`` last added a node for a trial.
    private var stepsSinceTrial = AcceptanceCalibration.trialInterval

    /// A controller for one request; `calibration` holds what earlier requests observed.
    init(budget: TreeBudget, costs: VerifyCostModel?, calibration: AcceptanceCalibration = AcceptanceCalibration()) {
        self.budget = budget
        self.costs = costs
        self.calibration = calibration
        self.calibration.beginRequest()
    }

    /// Nodes to ask a model drafter for. Growing a draft tree costs a head call per level, so
    /// with an adaptive budget the drafter grows about what verification will use: twice the
    /// largest size chosen in the last 4 steps (room to grow), at least 4 nodes, at most the
    /// maximum. A fixed budget is drafted in full.
    var draftBudget: Int {
        switch budget {
        case .fixed(let n):
            return n
        case .adaptive(let maximum):
            return min(maximum, max(4, 2 * (recentChoices.max() ?? 2)))
        }
    }

    /// Calibrated acceptance probability of a node.
    func probability(score: Float, sources: TokenSources) -> Double {
        calibration.probability(score: score, sources: sources)
    }

    /// A node of a step's tree, in the order the step takes them.
    struct RankedNode {
        /// Index in the tree.
        var node: Int
        /// Calibrated probability that the target accepts its path.
        var probability: Double
        /// Whether its band has gone ``AcceptanceCalibration/trialInterval`` steps untried.
        var wantsTrial: Bool
    }

    /// The nodes of `tree` in the order a step takes them: with an automatic budget, best first
    /// by calibrated probability (``AcceptanceCalibration/ranked(_:)``); with a fixed budget,
    /// the tree's own order.
    func order(of tree: TokenTree) -> [RankedNode] {
        let ranked: [(node: Int, probability: Double)]
        switch budget {
        case .fixed:
            ranked = (0..<tree.count).map { ($0, probability(score: tree.scores[$0], sources: tree.sources[$0])) }
        case .adaptive:
            ranked = calibration.ranked(tree)
        }
        return ranked.map {
            RankedNode(
                node: $0.node, probability: $0.probability,
                wantsTrial: calibration.wantsTrial(score: tree.scores[$0.node], sources: tree.sources[$0.node]))
        }
    }

    /// How many nodes of `order` (``order(of:)``) to verify after `context` committed tokens.
    mutating func choose(from order: [RankedNode], context: Int) -> Int {
        let available = min(order.count, budget.maximum)
        switch budget {
        case .fixed:
            return available
        case .adaptive:
            guard let costs, available > 0 else { return available }
            var expected = 1.0
            var best = 0
            var bestRate = 1.0 / costs.relativeCost(ofTreeSize: 1, context: context)
            for k in 1...available {
                expected += order[k - 1].probability
                let rate = expected / costs.relativeCost(ofTreeSize: k + 1, context: context)
                if rate > bestRate {
                    bestRate = rate
                    best = k
                }
            }
            // The estimates learn only from verified nodes, so a band whose estimate fell below
            // what a node costs would never be tried again (seen on DocQA: context nodes the
            // previous request had refuted, skipped for a whole request in which they were
            // right). The next node goes in too when its band has gone untried for a while (its
            // parent is already in: the order puts parents first), at most once every
            // `trialInterval` steps, so trials cost at most one node in that many steps.
            if best < available, order[best].wantsTrial, stepsSinceTrial >= AcceptanceCalibration.trialInterval {
                best += 1
                stepsSinceTrial = 0
            }
            return best
        }
    }

    /// Records which of the first `verified` nodes of `tree` the target accepted.
    mutating func record(tree: TokenTree, verified: Int, accepted: Set<Int32>) {
        recentChoices.append(verified)
        if recentChoices.count > 4 { recentChoices.removeFirst() }
        calibration.recordStep()
        stepsSinceTrial += 1
        for i in 0..<verified {
            calibration.record(score: tree.scores[i], sources: tree.sources[i], accepted: accepted.contains(Int32(i)))
        }
    }
}

/// How often the target accepted nodes of each kind of source (draft, datastore and context,
/// datastore, context) and score band (powers of two), against the score as the prior.
///
/// A decoder carries it from request to request, so a request does not start blind: the first
/// steps, where an uncalibrated score buys nodes that do not pay, are where the worst requests
/// lost. At the start of a request every band keeps at most ``carriedObservations`` of its
/// earlier observations (in their proportions), so the new request's own evidence takes over
/// within a few steps. Evidence comes only from verified nodes, so bands that have gone untried
/// ask for a trial (``wantsTrial(score:sources:)``) instead of staying wherever they fell.
public struct AcceptanceCalibration: Sendable, Equatable {
    static let classes = 4
    static let bands = 16
    /// Weight of the prior, in pseudo-observations.
    static let priorWeight = 2.0
    /// Observations a band carries into a new request.
    static let carriedObservations = 8.0

    /// Steps a band may go without a verified node before the budget tries one anyway.
    public static let trialInterval = 8

    private var hits = [Double](repeating: 0, count: classes * bands)
    private var trials = [Double](repeating: 0, count: classes * bands)
    /// Steps since each band last had a node verified.
    private var idleSteps = [Int](repeating: 0, count: classes * bands)

    /// No observations: every node's probability is its score.
    public init() {}

    /// Discounts earlier requests' observations (see the type's documentation).
    public mutating func beginRequest() {
        for i in trials.indices where trials[i] > Self.carriedObservations {
            hits[i] *= Self.carriedObservations / trials[i]
            trials[i] = Self.carriedObservations
        }
        // A new request is new evidence: each band that was tried before gets a trial early on.
        for i in idleSteps.indices where trials[i] > 0 { idleSteps[i] = Self.trialInterval }
    }

    /// Whether a node with this score and these sources should be verified to keep its band's
    /// estimate current: the band has been observed before and has had no verified node for
    /// ``trialInterval`` steps (and at the start of a request).
    public func wantsTrial(score: Float, sources: TokenSources) -> Bool {
        let s = Self.slot(score: score, sources: sources)
        return trials[s] > 0 && idleSteps[s] >= Self.trialInterval
    }

    /// Counts one decode step (for ``wantsTrial(score:sources:)``).
    public mutating func recordStep() {
        for i in idleSteps.indices { idleSteps[i] += 1 }
    }

    private static func slot(score: Float, sources: TokenSources) -> Int {
        let kind = sources.contains(.draft) ? 0 : sources.contains(.datastore) && sources.contains(.context) ? 1 : sources.contains(.datastore) ? 2 : 3
        let band = score > 0 ? min(bands - 1, max(0, Int(-log2(Double(score))))) : bands - 1
        return kind * bands + band
    }

    /// Calibrated acceptance probability of a node with this score and these sources.
    public func probability(score: Float, sources: TokenSources) -> Double {
        let s = Self.slot(score: score, sources: sources)
        let prior = Double(min(max(score, 0), 1))
        return (hits[s] + Self.priorWeight * prior) / (trials[s] + Self.priorWeight)
    }

    /// The nodes of `tree` best first by calibrated probability, each after its parent, so
    /// that every prefix of the order is itself a tree. A node counts at most its parent's
    /// probability: a path is accepted only when its prefix is. Ties keep the tree's order.
    ///
    /// A fused tree comes ranked by its sources' own scores, which mean different things for a
    /// draft model, the datastore and the request's context. Ranked by what the target
    /// accepted instead, a step keeps (say) the context's copied tokens ahead of datastore
    /// continuations that rarely pass, where a prefix of the fused order would have to take
    /// both or neither.
    public func ranked(_ tree: TokenTree) -> [(node: Int, probability: Double)] {
        let n = tree.count
        var children = [[Int]](repeating: [], count: n)
        var frontier: [(node: Int, probability: Double)] = []
        for i in 0..<n {
            let parent = Int(tree.parents[i])
            if parent < 0 {
                frontier.append((i, probability(score: tree.scores[i], sources: tree.sources[i])))
            } else {
                children[parent].append(i)
            }
        }
        var order: [(node: Int, probability: Double)] = []
        order.reserveCapacity(n)
        while !frontier.isEmpty {
            // A step's tree has at most a few dozen nodes: a scan is cheaper than a heap.
            var best = 0
            for j in frontier.indices.dropFirst() {
                let a = frontier[j], b = frontier[best]
                if a.probability > b.probability || (a.probability == b.probability && a.node < b.node) { best = j }
            }
            let chosen = frontier[best]
            frontier.swapAt(best, frontier.count - 1)
            frontier.removeLast()
            order.append(chosen)
            for c in children[chosen.node] {
                let own = probability(score: tree.scores[c], sources: tree.sources[c])
                frontier.append((c, min(chosen.probability, own)))
            }
        }
        return order
    }

    /// Counts one verified node: whether the target accepted it.
    public mutating func record(score: Float, sources: TokenSources, accepted: Bool) {
        let s = Self.slot(score: score, sources: sources)
        trials[s] += 1
        idleSteps[s] = 0
        if accepted { hits[s] += 1 }
    }
}

/// Verify-cost models measured once per engine configuration and kept in rasd's cache.
public enum VerifyCostModelCache {
    /// Context lengths the cached models are measured after: the range of the tasks' prompts.
    public static let contexts = [64, 512, 1024]

    /// The file that caches the curves of this model, thread count, kernel path and engine
    /// revision under `cacheDirectory`.
    public static func file(model: LlamaModel, threads: Int, kernels: KernelPath, cacheDirectory: String) -> String {
        let key = "\(URL(fileURLWithPath: model.path).lastPathComponent)-\(model.fileSize)-t\(threads)-\(kernels.rawValue)"
            + "-r\(InferenceSession.engineRevision)"
        return cacheDirectory + "/cost-curves/" + key + ".json"
    }

    /// Curves less consistent than this (``VerifyCostModel/inconsistency``) were measured while
    /// something else used the machine: they are measured again.
    public static let tolerance = 0.1
    /// Measurements at most for one cache file, the most consistent kept: all of them in a row
    /// when none is cached, then one more per start while the kept one is inconsistent, so a
    /// machine that stays busy costs a bounded number of measurements.
    public static let attempts = 3

    /// The cached model for this model, thread count, kernel path and engine revision,
    /// measuring it (several seconds) when absent or inconsistent (see ``attempts``). `log`
    /// hears about a measurement.
    public static func model(
        model: LlamaModel, threads: Int, kernels: KernelPath, cacheDirectory: String, log: ((String) -> Void)? = nil
    ) throws -> VerifyCostModel {
        let file = Self.file(model: model, threads: threads, kernels: kernels, cacheDirectory: cacheDirectory)
        var best: VerifyCostModel?
        var made = 0
        if let data = FileManager.default.contents(atPath: file), let cached = try? JSONDecoder().decode(VerifyCostModel.self, from: data) {
            made = cached.measurements ?? 1
            if cached.inconsistency <= tolerance || made >= attempts { return cached }
            log?("the cached verify-cost curves in \(file) are inconsistent (\(String(format: "%.2f", cached.inconsistency)) > \(tolerance)): the machine was busy when they were measured")
            best = cached
        }
        let contexts = Self.contexts.filter { $0 + 64 <= model.config.contextLength }
        let session = try InferenceSession(model: model, capacity: (contexts.max() ?? 0) + 64, threads: threads, kernels: kernels)
        let tries = best == nil ? attempts : 1
        for _ in 1...tries {
            log?("measuring the verify-cost curves of this engine (attempt \(made + 1) of at most \(attempts); cached in \(file))")
            made += 1
            let costs = try VerifyCostModel.measure(
                session: session, contexts: contexts, sizes: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64], repeats: 5)
            if best.map({ costs.inconsistency < $0.inconsistency }) ?? true { best = costs }
            if costs.inconsistency <= tolerance { break }
        }
        guard var best else { throw EngineError.invalidArgument("no verify-cost measurement was made") }
        best.measurements = made
        if best.inconsistency > tolerance {
            log?("the machine was busy again: keeping the most consistent curves (\(String(format: "%.2f", best.inconsistency)))\(made < attempts ? "; the next start measures once more" : "; delete \(file) to measure again")")
        }
        try? FileManager.default.createDirectory(atPath: cacheDirectory + "/cost-curves", withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(best) {
            // Written beside the cache file and renamed over it, so concurrent decoders never read
            // half a file. (Foundation's own atomic writes, `.atomic` and `createFile`, leave an
            // empty /tmp/TemporaryDirectory.* behind on Linux every time.)
            let partial = file + ".partial-\(getpid())"
            if (try? data.write(to: URL(fileURLWithPath: partial))) != nil, rename(partial, file) != 0 {
                try? FileManager.default.removeItem(atPath: partial)
            }
        }
        return best
    }
}

/// Which optional sources a step consults — the model drafter, the datastore — chosen by
/// measured speed.
///
/// Each combination of the method's optional sources is an arm (`rasd`: both, the drafter only,
/// the datastore only, neither; `draft`, `rest` and `retrieval`: the one source or not). Each arm
/// keeps exponential averages of the tokens a step emitted and the seconds the whole step took;
/// the step takes the arm with the most tokens per second, and every ``probeInterval``-th step
/// tries the next other arm in turn so their figures stay current. An arm whose try leaves it
/// behind lets its next turn pass, then three (``maximumBackoff``): on Summary, where prompt
/// lookup leads throughout, `rasd` had spent a fifth of its steps running the drafter for tries.
/// An arm that leads, or wins a try, is tried at every turn again.
///
/// No attribution of tokens to sources is needed, which matters for RASD: there the draft also
/// decides which datastore branches survive pruning. Going without the drafter costs it nothing but bookkeeping
/// (``Drafter/accepted(tokens:hiddenStates:)`` only queues the tokens for its next call); going
/// without the datastore saves its query. A decoder carries the averages from request to
/// request. Only the automatic budget uses the gate: a fixed budget asks every source.
public struct SourceGate: Sendable, Equatable {
    /// Steps between tries of the arms that are behind.
    public static let probeInterval = 8
    /// An arm that keeps losing its tries is tried once in this many of its turns.
    public static let maximumBackoff = 4
    static let weight = 0.2
    static let warmUp = 4

    /// The sources an arm consults.
    public struct Choice: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let drafter = Choice(rawValue: 1)
        public static let datastore = Choice(rawValue: 2)
    }

    private struct Arm: Sendable, Equatable {
        var tokens = 0.0, seconds = 0.0, count = 0
        var rate: Double { seconds > 0 ? tokens / seconds : 0 }
        mutating func add(tokens t: Double, seconds s: Double) {
            if count == 0 { (tokens, seconds) = (t, s) } else {
                tokens += SourceGate.weight * (t - tokens)
                seconds += SourceGate.weight * (s - seconds)
            }
            count += 1
        }
    }
    /// The optional sources the gate chooses among.
    public let sources: Choice
    /// The arms, all sources first, then every subset down to none.
    private let choices: [Choice]
    private var arms: [Arm]
    private var sinceProbe = 0, nextProbe = 0
    /// Per arm: one try per this many of its turns (1 = every turn), and turns left to pass.
    private var backoff: [Int], skips: [Int]
    /// The arm the current step tries, when it is a try.
    private var trying: Int?

    /// A gate over `sources` (the method's optional ones); no observations yet.
    public init(sources: Choice) {
        self.sources = sources
        choices = (0...sources.rawValue).reversed().map(Choice.init(rawValue:)).filter { sources.isSuperset(of: $0) }
        arms = Array(repeating: Arm(), count: choices.count)
        backoff = Array(repeating: 1, count: choices.count)
        skips = Array(repeating: 0, count: choices.count)
    }

    private var leader: Int {
        var best = 0
        for i in arms.indices where arms[i].rate > arms[best].rate { best = i }
        return best
    }

    /// The sources this step should consult.
    public mutating func choose() -> Choice {
        trying = nil
        if let fresh = arms.firstIndex(where: { $0.count < Self.warmUp }) { return choices[fresh] }
        let leader = self.leader
        (backoff[leader], skips[leader]) = (1, 0)
        sinceProbe += 1
        guard sinceProbe >= Self.probeInterval, arms.count > 1 else { return choices[leader] }
        sinceProbe = 0
        // The turn goes to the next other arm; one still sitting out turns lets it pass.
        nextProbe = (nextProbe + 1) % arms.count
        if nextProbe == leader { nextProbe = (nextProbe + 1) % arms.count }
        guard skips[nextProbe] == 0 else {
            skips[nextProbe] -= 1
            return choices[leader]
        }
        trying = nextProbe
        return choices[nextProbe]
    }

    /// Records a step: the sources it consulted, the tokens it emitted and its seconds.
    public mutating func record(_ choice: Choice, tokens: Int, seconds: Double) {
        guard let i = choices.firstIndex(of: choice) else { return }
        arms[i].add(tokens: Double(tokens), seconds: seconds)
        guard trying == i else { return }
        trying = nil
        backoff[i] = leader == i ? 1 : min(2 * backoff[i], Self.maximumBackoff)
        skips[i] = backoff[i] - 1
    }
}

import Dispatch
import Foundation
import RASDModel
import RASDTrees

/// Options of one generation.
public struct DecodeOptions: Sendable {
    /// How tokens are proposed.
    public var method: DecodingMethod
    /// Tree size per step.
    public var budget: TreeBudget
    /// Retrieval parameters (datastore and prompt).
    public var retrieval: RetrievalParameters
    /// RASD pruning: retrieval branches must start with one of the drafter's top-k root tokens.
    public var pruneTopK: Int
    /// Most tokens to generate.
    public var maxTokens: Int
    /// Tokens that end the generation (not emitted).
    public var stopTokens: Set<UInt32>

    /// Creates options; the budget adapts up to 63 speculative nodes (64 rows) by default.
    public init(
        method: DecodingMethod, maxTokens: Int, stopTokens: Set<UInt32> = [], budget: TreeBudget = .adaptive(maximum: 63),
        retrieval: RetrievalParameters = RetrievalParameters(), pruneTopK: Int = 8
    ) {
        self.method = method
        self.maxTokens = maxTokens
        self.stopTokens = stopTokens
        self.budget = budget
        self.retrieval = retrieval
        self.pruneTopK = pruneTopK
    }
}

/// What a generation did, for the statistics line and the evaluation tables.
public struct DecodeStatistics: Codable, Sendable, Equatable {
    public var method: String
    public var budget: String
    public var promptTokens = 0
    /// Tokens generated (stop token excluded).
    public var tokens = 0
    /// Target forward passes after the prompt (verification steps; one per token for `ar`).
    public var steps = 0
    /// Speculative nodes verified, over all steps.
    public var verifiedNodes = 0
    /// Accepted speculative tokens by source (a token proposed by several sources counts for each).
    public var acceptedBySource: [String: Int] = [:]
    public var prefillSeconds = 0.0
    /// Wall time from the first generated token's step to the end (prefill excluded).
    public var seconds = 0.0
    public var retrievalSeconds = 0.0
    public var draftSeconds = 0.0
    public var verifySeconds = 0.0
    /// Steps that ran the model drafter (`draft`, `rasd`; see ``SourceGate``).
    public var draftedSteps = 0
    /// Steps that queried the datastore (`rest`, `retrieval`, `rasd`; see ``SourceGate``).
    public var datastoreSteps = 0
    /// Things the user should know (a datastore that failed mid-decode, a full context).
    public var warnings: [String] = []

    /// Tokens emitted per verification step, bonus token included (Spec-Bench's acceptance length).
    public var meanAcceptedLength: Double { steps == 0 ? 0 : Double(tokens) / Double(steps) }
    /// Generated tokens per second (prefill excluded).
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : 0 }

    /// The one-line summary printed after a decode.
    public var line: String {
        let speculative = max(1, acceptedBySource.values.reduce(0, +))
        let shares = ["draft", "datastore", "context"].compactMap { s -> String? in
            guard let n = acceptedBySource[s], n > 0 else { return nil }
            return "\(s) \(Int((100 * Double(n) / Double(speculative)).rounded()))%"
        }
        return String(
            format: "tokens %d, %.1f tok/s, steps %d, accepted %.2f, draft share %@, retrieval %.3f s%@, drafting %.3f s%@, verification %.3f s (%@, budget %@)",
            tokens, tokensPerSecond, steps, meanAcceptedLength, shares.isEmpty ? "none" : shares.joined(separator: " "),
            retrievalSeconds, datastoreSteps > 0 && datastoreSteps < steps ? " (datastore on \(datastoreSteps) steps)" : "",
            draftSeconds, draftedSteps > 0 && draftedSteps < steps ? " (\(draftedSteps) steps drafted)" : "",
            verifySeconds, method, budget)
    }
}

/// An error of the decoder (not of the engine or a datastore).
public struct DecodingError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Speculative decoding against one inference session: retrieval from a datastore and the
/// context, an optional model drafter, RASD pruning and fusion, one verification per step.
///
/// The emitted tokens are exactly the target's greedy tokens: every step keeps the longest tree
/// path that equals the target's own argmax chain, and the engine computes a token's logits
/// identically whatever tree it sits in.
public final class SpeculativeDecoder {
    public let session: InferenceSession
    /// Where retrieval methods look; may change between requests.
    public var datastore: RetrievalSource?
    public let drafter: Drafter?
    public let costs: VerifyCostModel?

    /// What the target accepted in earlier requests, per method (see ``AcceptanceCalibration``).
    public private(set) var calibrations: [DecodingMethod: AcceptanceCalibration] = [:]
    /// Which optional sources paid in earlier requests, per method (see ``SourceGate``).
    public private(set) var gates: [DecodingMethod: SourceGate] = [:]

    private var workspace = TreeWorkspace()
    private var draftTree = TokenTree(), datastoreTree = TokenTree(), contextTree = TokenTree()
    private var prunedDatastore = TokenTree()
    private var fused = TokenTree(), verified = TokenTree()
    /// Position in `verified` of each node of `fused` (-1: not taken).
    private var placed: [Int] = []
    private var layout = TreeLayout()
    private var accepted = AcceptedPath()
    private let retrievalQueue = DispatchQueue(label: "rasd.decoding.retrieval")
    /// The last prompt prefilled, its greedy next token and (with a drafter) its hidden states.
    private var lastPrefill: (prompt: [UInt32], next: UInt32, hiddenStates: [Float])?

    /// Creates a decoder.
    /// - Parameters:
    ///   - datastore: retrieval source for `rest`, `retrieval` and `rasd` (nil: prompt only).
    ///   - drafter: model drafter for `draft` and `rasd`.
    ///   - costs: the engine's verify-cost curves; needed for adaptive budgets.
    public init(session: InferenceSession, datastore: RetrievalSource?, drafter: Drafter?, costs: VerifyCostModel?) {
        self.session = session
        self.datastore = datastore
        self.drafter = drafter
        self.costs = costs
    }

    /// Generates after `prompt` and calls `onTokens` with every batch of new tokens as they are
    /// accepted. The session is reset first, except that the prompt's KV entries are reused when
    /// the previous generation had the same prompt (an evaluation running several methods).
    /// - Throws: ``DecodingError`` when the method needs a drafter or cost curves that are
    ///   missing, ``EngineError`` from the engine.
    public func generate(
        prompt: [UInt32], options: DecodeOptions, onTokens: ([UInt32]) throws -> Void = { _ in }
    ) throws -> (tokens: [UInt32], statistics: DecodeStatistics) {
        if options.method.usesDrafter && drafter == nil {
            throw DecodingError("method \(options.method) needs a model drafter and none is available (train or fetch a draft head; see issue 8)")
        }
        if case .adaptive = options.budget, options.method != .ar, costs == nil {
            throw DecodingError("an adaptive tree budget needs the engine's verify-cost curves; give a fixed budget or the curves")
        }
        var stats = DecodeStatistics(method: options.method.rawValue, budget: options.budget.description)
        stats.promptTokens = prompt.count
        let clock = ContinuousClock()
        let prefillStart = clock.now
        var pending: UInt32
        let promptHiddenStates: [Float]
        if let last = lastPrefill, last.prompt == prompt, session.committedTokens.starts(with: prompt) {
            // Same prompt as the previous generation: its KV entries are still in the cache
            // (computed identically whatever follows), so roll back to them instead of recomputing.
            try session.truncate(to: prompt.count)
            pending = last.next
            promptHiddenStates = last.hiddenStates
        } else {
            session.reset()
            lastPrefill = nil
            if drafter != nil {
                // Keep the prompt's hidden states for the drafter (this request's and later ones').
                var states: [Float] = []
                states.reserveCapacity(prompt.count * session.model.config.embeddingLength)
                pending = try session.prefill(prompt) { _, chunk in states.append(contentsOf: chunk) }
                promptHiddenStates = states
            } else {
                pending = try session.prefill(prompt)
                promptHiddenStates = []
            }
            lastPrefill = (prompt, pending, promptHiddenStates)
        }
        // The drafter's pass over the prompt counts as prefill, like the target's.
        if let drafter, options.method.usesDrafter { try drafter.begin(prompt: prompt, hiddenStates: promptHiddenStates) }
        stats.prefillSeconds = seconds(clock.now - prefillStart)

        var context = ContextIndex(parameters: options.retrieval)
        if options.method.usesContext { context.append(contentsOf: prompt) }
        var recent = Array(prompt.suffix(options.retrieval.maxMatch))
        var useDatastore = options.method.usesDatastore && datastore != nil
        var output: [UInt32] = []
        let start = clock.now
        func finished() -> (tokens: [UInt32], statistics: DecodeStatistics) {
            stats.seconds = seconds(clock.now - start)
            return (output, stats)
        }

        /// Emits `token` unless it ends the generation; false when generation is over.
        func emit(_ tokens: [UInt32]) throws -> Bool {
            var batch: [UInt32] = []
            var more = true
            for t in tokens {
                if options.stopTokens.contains(t) { more = false; break }
                batch.append(t)
                if output.count + batch.count >= options.maxTokens { more = false; break }
            }
            output += batch
            stats.tokens = output.count
            if options.method.usesContext { context.append(contentsOf: batch) }
            recent += batch
            if recent.count > 2 * options.retrieval.maxMatch { recent.removeFirst(recent.count - options.retrieval.maxMatch) }
            if !batch.isEmpty { try onTokens(batch) }
            return more
        }

        guard options.maxTokens > 0 else { return finished() }
        if options.method == .ar {
            while try emit([pending]) {
                guard session.committedLength + 1 <= session.capacity else {
                    stats.warnings.append("the context is full (\(session.capacity) tokens); generation stopped")
                    break
                }
                let t0 = clock.now
                pending = try session.decodeStep(pending)
                stats.verifySeconds += seconds(clock.now - t0)
                stats.steps += 1
            }
            return finished()
        }

        guard try emit([pending]) else { return finished() }
        var budget = BudgetController(
            budget: options.budget, costs: costs, calibration: calibrations[options.method] ?? AcceptanceCalibration())
        var optional: SourceGate.Choice = []
        if options.method.usesDrafter { optional.insert(.drafter) }
        if useDatastore { optional.insert(.datastore) }
        var gate = gates[options.method].flatMap { $0.sources == optional ? $0 : nil } ?? SourceGate(sources: optional)
        // The gate belongs to the automatic budget; a fixed budget always asks every source.
        var gated = false
        if case .adaptive = options.budget { gated = !optional.isEmpty }
        defer {
            calibrations[options.method] = budget.calibration
            if gated { gates[options.method] = gate }
        }
        while true {
            let room = session.capacity - session.committedLength - 1
            guard room >= 0 else {
                stats.warnings.append("the context is full (\(session.capacity) tokens); generation stopped")
                break
            }
            // Candidates for the tokens after `pending` (already in the context).
            let retrievalStart = clock.now
            let datastoreAnswer = RetrievalResultBox()
            let group = DispatchGroup()
            let choice = gated ? gate.choose() : optional
            let queried = useDatastore && choice.contains(.datastore)
            if queried, let datastore {
                stats.datastoreSteps += 1
                // Runs beside the drafter (the paper's first stated limitation).
                let query = Array(recent.suffix(options.retrieval.maxMatch))
                let parameters = options.retrieval
                retrievalQueue.async(group: group) {
                    let t0 = ContinuousClock.now
                    do { datastoreAnswer.set(.success(try datastore.retrieve(context: query, parameters: parameters)), after: t0) } catch {
                        datastoreAnswer.set(.failure(error), after: t0)
                    }
                }
            }
            var contextAnswer = CandidateTrie.empty
            if options.method.usesContext { context.retrieve(into: &contextAnswer) }
            stats.retrievalSeconds += seconds(clock.now - retrievalStart)
            var rootTop: TopTokens? = nil
            draftTree.removeAll()
            if options.method.usesDrafter, let drafter, choice.contains(.drafter) {
                let t0 = clock.now
                let d = try drafter.draft(after: pending, budget: budget.draftBudget, rootTopK: options.pruneTopK)
                draftTree = d.tree
                rootTop = d.root
                stats.draftSeconds += seconds(clock.now - t0)
                stats.draftedSteps += 1
            }
            group.wait()
            datastoreTree.removeAll()
            if queried, let result = datastoreAnswer.value {
                switch result {
                case .success(let answer):
                    try datastoreTree.replaceWithRetrieval(answer, source: .datastore)
                case .failure(let error):
                    useDatastore = false
                    stats.warnings.append("retrieval from \(datastore?.sourceDescription ?? "the datastore") failed (\(error)); continuing with the prompt alone")
                }
            }
            if options.method.usesContext { try contextTree.replaceWithRetrieval(contextAnswer, source: .context) } else { contextTree.removeAll() }
            stats.retrievalSeconds += datastoreAnswer.seconds

            // Prune (RASD) and fuse.
            try workspace.startFusion(with: draftTree)
            if options.method == .rasd, let rootTop {
                workspace.prune(retrieval: datastoreTree, rootTop: rootTop, into: &prunedDatastore)
                try workspace.addToFusion(prunedDatastore)
            } else if !datastoreTree.isEmpty {
                // (In rasd, a step without the drafter fuses retrieval as `retrieval` does.)
                try workspace.addToFusion(datastoreTree)
            }
            // The request's own context joins unpruned, also in rasd: its matches are specific
            // to this request (a summary copies from its paper), and the head, trained on
            // general text, ranks copied tokens low. Pruning it too measured 2.29 accepted
            // tokens on 6 Summary prompts against 2.94 unpruned (retrieval alone: 3.00).
            if !contextTree.isEmpty { try workspace.addToFusion(contextTree) }
            try workspace.finishFusion(budget: min(options.budget.maximum, room), into: &fused)
            let order = budget.order(of: fused)
            let k = budget.choose(from: order, context: session.committedLength)
            verified.removeAll()
            placed.removeAll(keepingCapacity: true)
            placed.append(contentsOf: repeatElement(-1, count: fused.count))
            for (position, i) in order.prefix(k).map(\.node).enumerated() {
                let parent = Int(fused.parents[i])
                try verified.append(
                    token: fused.tokens[i], parent: parent < 0 ? -1 : placed[parent], score: fused.scores[i],
                    sources: fused.sources[i])
                placed[i] = position
            }
            workspace.layout(verified, pendingToken: pending, into: &layout)

            // Verify, accept, commit.
            let t0 = clock.now
            let argmax = try session.verify(tokens: layout.tokens, parents: layout.parents)
            try TreeVerification.acceptGreedy(tree: layout, targetArgmax: argmax, into: &accepted)
            let kept = layout.keptRows(for: accepted)
            try session.commit(path: kept.map(Int.init))
            stats.verifySeconds += seconds(clock.now - t0)
            stats.steps += 1
            stats.verifiedNodes += k

            var acceptedNodes = Set<Int32>()
            for row in accepted.rows {
                let node = layout.treeIndices[Int(row)]
                acceptedNodes.insert(node)
                let sources = verified.sources[Int(node)]
                for (source, name) in [(TokenSources.draft, "draft"), (.datastore, "datastore"), (.context, "context")] where sources.contains(source) {
                    stats.acceptedBySource[name, default: 0] += 1
                }
            }
            budget.record(tree: verified, verified: k, accepted: acceptedNodes)
            let stepTime = seconds(clock.now - retrievalStart)
            if gated { gate.record(choice, tokens: 1 + accepted.tokens.count, seconds: stepTime) }
            if options.method.usesDrafter, let drafter {
                let t1 = clock.now
                var states: [Float] = []
                for row in kept { states += try session.hiddenState(node: Int(row), normalized: true) }
                try drafter.accepted(tokens: [pending] + accepted.tokens, hiddenStates: states)
                stats.draftSeconds += seconds(clock.now - t1)
            }

            pending = accepted.bonusToken
            guard try emit(accepted.tokens + [pending]) else { break }
        }
        return finished()
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// A retrieval result handed from the retrieval queue to the decode loop.
private final class RetrievalResultBox: @unchecked Sendable {
    // @unchecked: written once on the retrieval queue before `DispatchGroup.wait()` returns on the
    // decoding thread, read only after it; the group provides the happens-before edge.
    private(set) var value: Result<CandidateTrie, Error>?
    private(set) var seconds = 0.0
    func set(_ v: Result<CandidateTrie, Error>, after start: ContinuousClock.Instant) {
        value = v
        let d = ContinuousClock.now - start
        seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

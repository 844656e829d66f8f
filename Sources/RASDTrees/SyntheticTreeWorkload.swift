/// Seeded inputs shaped like one real decode step, for benchmarks and tests of the tree
/// operations: an EAGLE-2-style draft tree, a datastore retrieval trie that partly agrees with
/// the drafter, and the drafter's dense distribution at the root.
///
/// **Drafter.** Every path has a fixed set of `branching` candidate next tokens: the top one
/// with a confidence drawn from [0.35, 0.9], the others sharing most of the rest with halving
/// weights, the last 10% spread over the vocabulary. The draft tree holds the `draftNodes`
/// paths of highest cumulative probability up to `maxDepth` (what EAGLE-2's reranking keeps).
///
/// **Datastore.** Between 20 and 400 occurrences continue the context for up to 10 tokens
/// (a tenth end early, at a document end). Each step follows the path's usual successor with
/// probability 0.75 and one of three alternatives otherwise; the usual successor is the
/// drafter's top candidate for 60% of paths and an unrelated token for the rest, and a third of
/// the alternatives are the drafter's other candidates. The trie is the `retrievalNodes` most
/// frequent continuation prefixes in the datastore's ranking order (``CandidateTrie``).
///
/// Equal parameters give equal workloads.
public struct SyntheticTreeWorkload: Sendable {
    /// The draft tree (cumulative probabilities as scores).
    public var draft: TokenTree
    /// The draft tree as the drafter emits it: tokens ...
    public var draftTokens: [UInt32]
    /// ... parents ...
    public var draftParents: [Int32]
    /// ... and probabilities given the parent's path.
    public var draftProbabilities: [Float]
    /// The retrieval answer.
    public var retrieval: CandidateTrie
    /// The drafter's distribution at the root, `vocabularySize` entries summing to 1.
    public var rootDistribution: [Float]
    /// The pending token (last accepted token).
    public var pendingToken: UInt32

    /// Generates the workload for `seed`.
    public init(
        seed: UInt64, vocabularySize: Int = 49_152, draftNodes: Int = 60, retrievalNodes: Int = 64,
        branching: Int = 8, maxDepth: Int = 8
    ) {
        precondition(vocabularySize >= 4 * branching && branching >= 4, "vocabulary too small for the workload")
        let model = SyntheticLanguage(seed: seed, vocabularySize: vocabularySize, branching: branching)
        var rng = Xoshiro256(seed: seed ^ 0x5EED)

        // Draft tree: best-first by cumulative probability.
        struct Frontier { var token: UInt32; var parent: Int32; var hash: UInt64; var conditional: Float; var cumulative: Float; var depth: Int }
        var frontier: [Frontier] = []
        var hashes: [UInt64] = []
        var depths: [Int] = []
        draftTokens = []
        draftParents = []
        draftProbabilities = []
        func expand(_ node: Int32, hash: UInt64, cumulative: Float, depth: Int) {
            for (token, p) in model.candidates(hash) {
                frontier.append(Frontier(token: token, parent: node, hash: model.extend(hash, token), conditional: p,
                                         cumulative: cumulative * p, depth: depth + 1))
            }
        }
        expand(-1, hash: model.rootHash, cumulative: 1, depth: 0)
        while draftTokens.count < draftNodes, !frontier.isEmpty {
            var best = 0
            for i in frontier.indices where frontier[i].cumulative > frontier[best].cumulative { best = i }
            let node = frontier.remove(at: best)
            draftTokens.append(node.token)
            draftParents.append(node.parent)
            draftProbabilities.append(node.conditional)
            hashes.append(node.hash)
            depths.append(node.depth)
            if node.depth < maxDepth {
                expand(Int32(draftTokens.count - 1), hash: node.hash, cumulative: node.cumulative, depth: node.depth)
            }
        }
        // Inputs made here are valid by construction.
        draft = (try? TokenTree(draftTokens: draftTokens, parents: draftParents, probabilities: draftProbabilities)) ?? TokenTree()

        // Root distribution: the candidates' probabilities, the rest spread thinly.
        let candidates = model.candidates(model.rootHash)
        var weights = (0..<vocabularySize).map { _ in Double.random(in: 0.5..<1.5, using: &rng) }
        for (token, _) in candidates { weights[Int(token)] = 0 }
        let tail = weights.reduce(0, +)
        let candidateMass = candidates.reduce(0) { $0 + Double($1.probability) }
        var row = weights.map { Float($0 / tail * (1 - candidateMass)) }
        for (token, p) in candidates { row[Int(token)] = p }
        rootDistribution = row
        pendingToken = UInt32.random(in: 0..<UInt32(vocabularySize), using: &rng)

        // Retrieval: occurrences of the context continue along the synthetic corpus.
        var nodeOf: [UInt64: Int] = [:]
        var tokens: [UInt32] = [], parents: [Int32] = [], counts: [UInt32] = [], nodeDepths: [Int] = []
        let occurrences = Int.random(in: 20...400, using: &rng)
        for _ in 0..<occurrences {
            let length = Double.random(in: 0..<1, using: &rng) < 0.1 ? Int.random(in: 1...9, using: &rng) : 10
            var hash = model.rootHash
            var parent = -1
            for _ in 0..<length {
                let u = Double.random(in: 0..<1, using: &rng)
                let choice = u < 0.75 ? 0 : u < 0.90 ? 1 : u < 0.97 ? 2 : 3
                let token = model.corpusSuccessor(hash, choice)
                hash = model.extend(hash, token)
                if let node = nodeOf[hash] {
                    counts[node] += 1
                    parent = node
                } else {
                    nodeOf[hash] = tokens.count
                    tokens.append(token)
                    parents.append(Int32(parent))
                    counts.append(1)
                    nodeDepths.append(parent < 0 ? 1 : nodeDepths[parent] + 1)
                    parent = tokens.count - 1
                }
            }
        }
        // The datastore's ranking: count desc, depth asc, then the parent's rank, then token
        // id; the parent's rank compares like its own key, so the comparison recurses upward.
        func precedes(_ a: Int, _ b: Int) -> Bool {
            if counts[a] != counts[b] { return counts[a] > counts[b] }
            if nodeDepths[a] != nodeDepths[b] { return nodeDepths[a] < nodeDepths[b] }
            let pa = Int(parents[a]), pb = Int(parents[b])
            if pa != pb && pa >= 0 && pb >= 0 { return precedes(pa, pb) }
            return tokens[a] < tokens[b]
        }
        let ranked = tokens.indices.sorted(by: precedes).prefix(retrievalNodes)
        var rank: [Int: Int32] = [:]
        for (r, node) in ranked.enumerated() { rank[node] = Int32(r) }
        retrieval = CandidateTrie(
            matchLength: 4, occurrences: occurrences,
            tokens: ranked.map { tokens[$0] },
            parents: ranked.map { parents[$0] < 0 ? -1 : rank[Int(parents[$0])] ?? -1 },
            counts: ranked.map { counts[$0] })
    }
}

/// The deterministic drafter and corpus behind ``SyntheticTreeWorkload``: every quantity is a
/// function of a path hash, so the draft tree and the retrieval trie agree where they should.
struct SyntheticLanguage: Sendable {
    let seed: UInt64
    let vocabularySize: Int
    let branching: Int

    var rootHash: UInt64 { mix(seed ^ 0xA5A5_A5A5) }

    func extend(_ hash: UInt64, _ token: UInt32) -> UInt64 {
        mix(hash &* 31 &+ UInt64(token) &+ 1)
    }

    /// The drafter's candidates after a path, most probable first.
    func candidates(_ hash: UInt64) -> [(token: UInt32, probability: Float)] {
        var rng = Xoshiro256(seed: hash ^ 0xD4AF7)
        var tokens: [UInt32] = []
        while tokens.count < branching {
            let token = UInt32.random(in: 0..<UInt32(vocabularySize), using: &rng)
            if !tokens.contains(token) { tokens.append(token) }
        }
        let top = Float.random(in: 0.35...0.9, using: &rng)
        let rest = (1 - top) * 0.9
        let weights = (1..<branching).map { Float(1) / Float(1 << $0) }
        let total = weights.reduce(0, +)
        return zip(tokens, [top] + weights.map { $0 / total * rest }).map { ($0, $1) }
    }

    /// The corpus's `choice`-th successor after a path (0: the usual one).
    func corpusSuccessor(_ hash: UInt64, _ choice: Int) -> UInt32 {
        var rng = Xoshiro256(seed: hash ^ UInt64(choice) &* 0xC0FFEE)
        let agree = Double.random(in: 0..<1, using: &rng) < (choice == 0 ? 0.6 : 0.33)
        if agree { return candidates(hash)[min(choice, branching - 1)].token }
        return UInt32.random(in: 0..<UInt32(vocabularySize), using: &rng)
    }

    private func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A set of synthetic decode steps and the buffers one decode loop reuses, so that a benchmark
/// can time (or count the allocations of) the same per-step tree work.
public struct SyntheticDecodeSteps {
    /// The workloads, used in turn.
    public let inputs: [SyntheticTreeWorkload]
    /// Their retrieval tries as trees.
    public let retrievals: [TokenTree]
    /// The drafter's top-k at the root of each workload.
    public let rootTops: [TopTokens]
    /// A target that agrees along each row's first child, per workload (for greedy acceptance).
    public private(set) var argmaxes: [[UInt32]] = []
    public let topK: Int
    public let budget: Int
    public let vocabularySize: Int

    public var workspace = TreeWorkspace()
    public var pruned = TokenTree(), fused = TokenTree(), layout = TreeLayout()
    public var accepted = AcceptedPath()
    private var draftTree = TokenTree(), retrievalTree = TokenTree()

    /// Generates `count` workloads from `seed` and runs each step once, so that every buffer has
    /// grown to its working size.
    public init(
        count: Int, seed: UInt64, vocabularySize: Int, draftNodes: Int, retrievalNodes: Int, topK: Int, budget: Int
    ) throws {
        inputs = (0..<count).map { w in
            SyntheticTreeWorkload(seed: seed &+ UInt64(w), vocabularySize: vocabularySize, draftNodes: draftNodes,
                                  retrievalNodes: retrievalNodes)
        }
        retrievals = try inputs.map { try TokenTree(retrieval: $0.retrieval, vocabularySize: vocabularySize) }
        rootTops = try inputs.map { try TopTokens(distribution: $0.rootDistribution, k: topK) }
        self.topK = topK
        self.budget = budget
        self.vocabularySize = vocabularySize
        for w in 0..<count {
            try coreStep(w)
            argmaxes.append((0..<layout.count).map { row in
                let children = layout.children(of: row)
                return children.isEmpty ? 0 : layout.tokens[children.lowerBound]
            })
        }
        for w in 0..<count { try fullStep(w) }
    }

    /// Prune (dense root row) + fuse + layout of workload `w`.
    public mutating func coreStep(_ w: Int) throws {
        try workspace.prune(retrieval: retrievals[w], rootDistribution: inputs[w].rootDistribution, topK: topK, into: &pruned)
        try workspace.fuse(draft: inputs[w].draft, retrieval: pruned, budget: budget, into: &fused)
        workspace.layout(fused, pendingToken: inputs[w].pendingToken, into: &layout)
    }

    /// A whole step: refill the draft and retrieval trees from the drafter's and the datastore's
    /// arrays, prune, fuse, lay out and accept greedily.
    public mutating func fullStep(_ w: Int) throws {
        let input = inputs[w]
        try draftTree.replaceWithDraft(tokens: input.draftTokens, parents: input.draftParents,
                                       probabilities: input.draftProbabilities, vocabularySize: vocabularySize)
        try retrievalTree.replaceWithRetrieval(input.retrieval, vocabularySize: vocabularySize)
        try workspace.prune(retrieval: retrievalTree, rootDistribution: input.rootDistribution, topK: topK, into: &pruned)
        try workspace.fuse(draft: draftTree, retrieval: pruned, budget: budget, into: &fused)
        workspace.layout(fused, pendingToken: input.pendingToken, into: &layout)
        if w < argmaxes.count { try TreeVerification.acceptGreedy(tree: layout, targetArgmax: argmaxes[w], into: &accepted) }
    }
}

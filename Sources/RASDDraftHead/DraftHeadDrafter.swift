import Foundation
import RASDDecoding
import RASDModel
import RASDTrees

/// How the drafter grows its tree (EAGLE-2's dynamic draft tree).
public struct DraftTreeOptions: Sendable, Equatable {
    /// Children per expanded node, and nodes expanded per level.
    public var topK: Int
    /// Levels below the root at most (the root's children are level 1).
    public var depth: Int
    /// A frontier node is expanded only when its cumulative probability is at least this.
    public var minimumScore: Float

    public init(topK: Int = 4, depth: Int = 6, minimumScore: Float = 0.1) {
        self.topK = topK
        self.depth = depth
        self.minimumScore = minimumScore
    }
}

/// The model drafter of `draft` and `rasd`: the EAGLE-style ``DraftHead`` growing an EAGLE-2
/// dynamic draft tree over the target's features.
///
/// Each ``draft(after:budget:rootTopK:)`` runs the head once over the pairs the target accepted
/// since the last step (with the target's true features) plus the root (the pending token), then
/// grows the tree level by level: of all children proposed so far, the `topK` best frontier
/// nodes by cumulative probability are expanded together in one head call (tree attention over
/// their ancestors), each proposing its `topK` most probable tokens. Expansion stops at
/// `depth` levels, or when no frontier node could still enter the best `budget` nodes or reach
/// `minimumScore`. The tree keeps the `budget` best nodes by cumulative probability, which is
/// ancestor-closed because a child never scores above its parent. The root's distribution (its
/// top `rootTopK` tokens) is what RASD prunes retrieval with.
public final class DraftHeadDrafter: Drafter {
    public let head: DraftHead
    public let session: DraftHeadSession
    public var options: DraftTreeOptions
    public var name: String { "draft-head" }

    private let width: Int
    /// The target's true feature of the last token whose pair is not yet in the head's cache.
    private var lastFeature: [Float] = []
    /// Accepted pairs (token after a true feature) still to run through the head.
    private var pendingTokens: [UInt32] = []
    private var pendingFeatures: [Float] = []
    /// Whether the root pair of the last draft is tentative node 0 of the session.
    private var rootIsTentative = false
    private var lastPrompt: [UInt32] = []
    private var top = TopTokens()

    /// A drafter over `head` whose cache holds `capacity` pairs, with `threads` threads of its
    /// own.
    public convenience init(head: DraftHead, capacity: Int, threads: Int = 1, options: DraftTreeOptions = DraftTreeOptions()) throws {
        try self.init(session: DraftHeadSession(head: head, capacity: capacity, threads: threads), options: options)
    }

    /// A drafter over `head` whose cache holds `capacity` pairs and that computes on `target`'s
    /// threads (see ``DraftHeadSession/init(head:capacity:sharingThreadsOf:)``): draft steps are
    /// short and memory-bound, and a core the target's pool leaves idle while the head runs
    /// alone is half the machine.
    public convenience init(
        head: DraftHead, capacity: Int, sharingThreadsOf target: InferenceSession, options: DraftTreeOptions = DraftTreeOptions()
    ) throws {
        try self.init(session: DraftHeadSession(head: head, capacity: capacity, sharingThreadsOf: target), options: options)
    }

    private init(session: DraftHeadSession, options: DraftTreeOptions) {
        head = session.head
        self.session = session
        self.options = options
        width = head.config.embeddingLength
    }

    /// A drafter for `session`'s target with the head at `path` (nil: the shipped head for that
    /// model, see ``DraftHeadLocation``); its cache holds the session's capacity plus
    /// ``treeRoom`` tentative nodes. With `threads` nil it computes on `session`'s threads,
    /// otherwise on that many of its own.
    public convenience init(headAt path: String?, for session: InferenceSession, threads: Int? = nil) throws {
        let head = try DraftHeadLocation.load(path, model: session.model)
        let capacity = session.capacity + Self.treeRoom
        if let threads {
            try self.init(head: head, capacity: capacity, threads: threads)
        } else {
            try self.init(head: head, capacity: capacity, sharingThreadsOf: session)
        }
    }

    /// Cache room for one draft tree beyond the target's committed context: the pending root and
    /// the tentative nodes of a tree of at most 64 rows (the decoder's largest budget is 63).
    public static let treeRoom = 128

    public func begin(prompt: [UInt32], hiddenStates: [Float]) throws {
        guard !prompt.isEmpty, hiddenStates.count == prompt.count * width else {
            throw DraftHeadError("the drafter needs one hidden state of \(width) values per prompt token (\(prompt.count) tokens, \(hiddenStates.count) values)")
        }
        let pairs = prompt.count - 1
        if prompt == lastPrompt, session.committedLength >= pairs {
            // Same prompt as the last request: its pairs are still in the cache.
            try session.truncate(to: pairs)
        } else {
            session.reset()
            lastPrompt = []
            // Pair j: the target's feature after token j, then token j + 1.
            var start = 0
            while start < pairs {
                let n = min(64, pairs - start)
                try hiddenStates.withUnsafeBufferPointer { states in
                    try session.forward(
                        tokens: Array(prompt[(start + 1)...(start + n)]),
                        features: UnsafeBufferPointer(rebasing: states[(start * width)..<((start + n) * width)]),
                        parents: (0..<n).map { Int32($0) - 1 }, logitNodes: [])
                }
                try session.commitPrefix(n)
                start += n
            }
            lastPrompt = prompt
        }
        lastFeature = Array(hiddenStates[(pairs * width)...])
        pendingTokens = []
        pendingFeatures = []
        rootIsTentative = false
    }

    public func draft(after pendingToken: UInt32, budget: Int, rootTopK: Int) throws -> (tree: TokenTree, root: TopTokens) {
        session.discardTentative()
        // The accepted pairs and the root, one chain; keep the pairs, the root stays tentative.
        let tokens = pendingTokens + [pendingToken]
        let features = pendingFeatures + lastFeature
        try features.withUnsafeBufferPointer {
            try session.forward(tokens: tokens, features: $0, parents: (0..<tokens.count).map { Int32($0) - 1 }, logitNodes: [tokens.count - 1])
        }
        try session.commitPrefix(pendingTokens.count)
        pendingTokens = []
        pendingFeatures = []
        rootIsTentative = true

        // Nodes of the dynamic tree (draft order); tentative index of expanded nodes.
        var nodeTokens: [UInt32] = [], nodeParents: [Int32] = [], nodeProbabilities: [Float] = [], nodeScores: [Float] = []
        var nodeDepths: [Int] = []
        var tentative: [Int32: Int] = [-1: 0]  // tree node (-1: the root) -> its tentative head node
        var predicted: [Int32: ArraySlice<Float>] = [:]  // expanded node -> its predicted feature
        let rootFeature = session.predictedFeatures.suffix(width)
        var root = TopTokens()
        let k = max(options.topK, 1)
        // Children of the root.
        try session.probabilities.withUnsafeBufferPointer { p in
            try root.select(from: UnsafeBufferPointer(rebasing: p[0..<head.vocabulary.count]), k: max(k, rootTopK))
        }
        let rootTop = try TopTokens(tokens: root.tokens.prefix(rootTopK).map { head.vocabulary[Int($0)] }, probabilities: Array(root.probabilities.prefix(rootTopK)))
        for (i, t) in root.tokens.prefix(k).enumerated() {
            nodeTokens.append(head.vocabulary[Int(t)])
            nodeParents.append(-1)
            nodeProbabilities.append(root.probabilities[i])
            nodeScores.append(root.probabilities[i])
            nodeDepths.append(1)
        }
        predicted[-1] = rootFeature
        var frontier = Array(nodeTokens.indices)  // nodes proposed by the last level
        var level = 1
        while level < options.depth, budget > 0, !frontier.isEmpty {
            // The budget-th best score so far: a node below it can never enter the tree, nor its children.
            let bar = nodeScores.count >= budget ? nodeScores.sorted(by: >)[budget - 1] : 0
            let expand = frontier.sorted { nodeScores[$0] != nodeScores[$1] ? nodeScores[$0] > nodeScores[$1] : $0 < $1 }
                .prefix(k).filter { nodeScores[$0] >= options.minimumScore && nodeScores[$0] > bar }
            guard !expand.isEmpty else { break }
            var inputFeatures: [Float] = []
            inputFeatures.reserveCapacity(expand.count * width)
            var parents: [Int32] = []
            for node in expand {
                let parent = nodeParents[node]
                inputFeatures += predicted[parent] ?? []
                parents.append(Int32(tentative[parent] ?? 0))
            }
            let base = session.tentativeCount
            try inputFeatures.withUnsafeBufferPointer {
                try session.forward(tokens: expand.map { nodeTokens[$0] }, features: $0, parents: parents, logitNodes: Array(expand.indices))
            }
            frontier = []
            let v = head.vocabulary.count
            for (row, node) in expand.enumerated() {
                tentative[Int32(node)] = base + row
                predicted[Int32(node)] = session.predictedFeatures[(row * width)..<((row + 1) * width)]
                try session.probabilities.withUnsafeBufferPointer { p in
                    try top.select(from: UnsafeBufferPointer(rebasing: p[(row * v)..<((row + 1) * v)]), k: k)
                }
                for (i, t) in top.tokens.enumerated() {
                    frontier.append(nodeTokens.count)
                    nodeTokens.append(head.vocabulary[Int(t)])
                    nodeParents.append(Int32(node))
                    nodeProbabilities.append(top.probabilities[i])
                    nodeScores.append(nodeScores[node] * top.probabilities[i])
                    nodeDepths.append(nodeDepths[node] + 1)
                }
            }
            level += 1
        }

        // The best `budget` nodes, parents first (a child never outscores its parent; ties go
        // to the shallower node, then the earlier one).
        let ranked = nodeTokens.indices.sorted {
            nodeScores[$0] != nodeScores[$1] ? nodeScores[$0] > nodeScores[$1] : nodeDepths[$0] != nodeDepths[$1] ? nodeDepths[$0] < nodeDepths[$1] : $0 < $1
        }.prefix(max(0, budget))
        var newIndex = [Int32](repeating: -1, count: nodeTokens.count)
        var tokensOut: [UInt32] = [], parentsOut: [Int32] = [], probabilitiesOut: [Float] = []
        for node in ranked {
            let parent = nodeParents[node]
            newIndex[node] = Int32(tokensOut.count)
            tokensOut.append(nodeTokens[node])
            parentsOut.append(parent < 0 ? -1 : newIndex[Int(parent)])
            probabilitiesOut.append(nodeProbabilities[node])
        }
        let tree = try TokenTree(draftTokens: tokensOut, parents: parentsOut, probabilities: probabilitiesOut, vocabularySize: head.target.config.vocabularySize)
        return (tree, rootTop)
    }

    public func accepted(tokens: [UInt32], hiddenStates: [Float]) throws {
        guard !tokens.isEmpty, hiddenStates.count == tokens.count * width else {
            throw DraftHeadError("accepted tokens need one hidden state of \(width) values each (\(tokens.count) tokens, \(hiddenStates.count) values)")
        }
        if rootIsTentative {
            // The root pair (last true feature, pending token) was computed exactly: keep it.
            try session.commitPrefix(1)
        } else {
            pendingTokens.append(tokens[0])
            pendingFeatures += lastFeature
        }
        session.discardTentative()
        rootIsTentative = false
        // Pairs (feature after token i, token i + 1) for the accepted draft tokens.
        for i in 1..<tokens.count {
            pendingTokens.append(tokens[i])
            pendingFeatures += hiddenStates[((i - 1) * width)..<(i * width)]
        }
        lastFeature = Array(hiddenStates[((tokens.count - 1) * width)...])
    }
}

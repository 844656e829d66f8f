/// A tree of proposed next tokens in flat, parallel arrays: the draft model's tree, a retrieval
/// trie, or the fused tree the target verifies.
///
/// Node `i` has token `tokens[i]`, parent `parents[i]` (-1 for children of the root, which is the
/// committed context), depth `depths[i]` (1 for children of the root), a score and the sources
/// that proposed it. Every parent precedes its children, so one pass in index order visits
/// parents first.
///
/// A node's **score** estimates the probability that the target produces the node's whole path:
/// the cumulative draft probability for draft nodes, the retrieval frequency (the share of
/// occurrences whose continuation starts with the path) for retrieval nodes. Scores are finite
/// and non-negative; budgets cut the lowest-scored nodes first.
///
/// The arrays can only be changed through the validating initialisers and methods, so every tree
/// satisfies the invariants above. The `replace...` methods and ``removeAll()`` keep the arrays'
/// storage, so a decode loop can refill the same tree every step without allocating.
public struct TokenTree: Sendable, Hashable {
    /// Most nodes a tree may hold (node indices and depths fit in 16 bits in the ranking keys).
    public static let maximumCount = 65_535

    /// Token of each node.
    public internal(set) var tokens: [UInt32] = []
    /// Parent index of each node; -1 for children of the root.
    public internal(set) var parents: [Int32] = []
    /// Depth of each node: 1 for children of the root.
    public internal(set) var depths: [Int32] = []
    /// Score of each node (see the type's documentation).
    public internal(set) var scores: [Float] = []
    /// Sources that proposed each node.
    public internal(set) var sources: [TokenSources] = []

    /// An empty tree.
    public init() {}

    /// A tree built by hand, validated.
    ///
    /// - Parameters:
    ///   - tokens: token of each node.
    ///   - parents: parent of each node, -1 for children of the root; must precede the node.
    ///   - scores: finite, non-negative score of each node.
    ///   - sources: sources of each node.
    ///   - vocabularySize: when given, every token must be below it.
    /// - Throws: ``TokenTreeError`` naming the first offending node.
    public init(
        tokens: [UInt32], parents: [Int32], scores: [Float], sources: [TokenSources], vocabularySize: Int? = nil
    ) throws {
        try Self.checkLengths(input: "tree", tokens.count, parents.count, scores.count, sources.count)
        reserveCapacity(tokens.count)
        for i in tokens.indices {
            try append(token: tokens[i], parent: Int(parents[i]), score: scores[i], sources: sources[i],
                       vocabularySize: vocabularySize, input: "tree")
        }
    }

    /// A tree built by hand whose nodes all come from `source`, validated.
    public init(
        tokens: [UInt32], parents: [Int32], scores: [Float], source: TokenSources, vocabularySize: Int? = nil
    ) throws {
        try self.init(tokens: tokens, parents: parents, scores: scores,
                      sources: Array(repeating: source, count: tokens.count), vocabularySize: vocabularySize)
    }

    /// A draft model's tree from its expansion. See ``replaceWithDraft(tokens:parents:probabilities:vocabularySize:)``.
    public init(draftTokens: [UInt32], parents: [Int32], probabilities: [Float], vocabularySize: Int? = nil) throws {
        try replaceWithDraft(tokens: draftTokens, parents: parents, probabilities: probabilities,
                             vocabularySize: vocabularySize)
    }

    /// A retrieval tree from a retrieval answer. See ``replaceWithRetrieval(_:source:vocabularySize:)``.
    public init(retrieval: CandidateTrie, source: TokenSources = .datastore, vocabularySize: Int? = nil) throws {
        try replaceWithRetrieval(retrieval, source: source, vocabularySize: vocabularySize)
    }

    /// Number of nodes.
    public var count: Int { tokens.count }

    /// True when the tree has no nodes.
    public var isEmpty: Bool { tokens.isEmpty }

    /// Removes every node, keeping the storage for reuse.
    public mutating func removeAll() {
        tokens.removeAll(keepingCapacity: true)
        parents.removeAll(keepingCapacity: true)
        depths.removeAll(keepingCapacity: true)
        scores.removeAll(keepingCapacity: true)
        sources.removeAll(keepingCapacity: true)
    }

    /// Reserves storage for `capacity` nodes.
    public mutating func reserveCapacity(_ capacity: Int) {
        tokens.reserveCapacity(capacity)
        parents.reserveCapacity(capacity)
        depths.reserveCapacity(capacity)
        scores.reserveCapacity(capacity)
        sources.reserveCapacity(capacity)
    }

    /// Appends a node below `parent` (-1 for the root) and returns its index.
    ///
    /// - Throws: ``TokenTreeError`` when `parent` is not an existing node or -1, `score` is
    ///   negative or not finite, the token is not below `vocabularySize`, or the tree is full.
    @discardableResult
    public mutating func append(
        token: UInt32, parent: Int, score: Float, sources: TokenSources, vocabularySize: Int? = nil
    ) throws -> Int {
        try append(token: token, parent: parent, score: score, sources: sources,
                   vocabularySize: vocabularySize, input: "tree")
    }

    /// Replaces the tree with a draft model's expansion, reusing the storage.
    ///
    /// The draft model's tree is given as it is expanded (EAGLE-2 style): node `i` has token
    /// `tokens[i]`, parent `parents[i]` (-1 below the root) and `probabilities[i]`, the draft's
    /// probability of the token **given its parent's path**. A node's score is the product of
    /// the probabilities along its path (the cumulative probability EAGLE-2 ranks by).
    /// Every node gets the source ``TokenSources/draft``.
    ///
    /// - Throws: ``TokenTreeError`` naming the first offending node; the tree is then empty.
    public mutating func replaceWithDraft(
        tokens: [UInt32], parents: [Int32], probabilities: [Float], vocabularySize: Int? = nil
    ) throws {
        removeAll()
        do {
            try Self.checkLengths(input: "draft", tokens.count, parents.count, probabilities.count)
            reserveCapacity(tokens.count)
            for i in tokens.indices {
                let probability = probabilities[i]
                guard probability >= 0, probability <= 1 else {  // also rejects NaN
                    throw TokenTreeError(.invalidScore, input: "draft", index: i,
                                         "probability \(probability) is not in [0, 1]")
                }
                let parent = Int(parents[i])
                let parentScore: Float = parent >= 0 && parent < i ? scores[parent] : 1
                try append(token: tokens[i], parent: parent, score: parentScore * probability, sources: .draft,
                           vocabularySize: vocabularySize, input: "draft")
            }
        } catch {
            removeAll()
            throw error
        }
    }

    /// Replaces the tree with a retrieval answer, reusing the storage.
    ///
    /// Nodes keep the trie's order (its ranking order). A node's score is its retrieval
    /// frequency: its count divided by the number of occurrences counted (`occurrences`, or the
    /// sum of the root children's counts when the answer was `sampled` or that sum is larger).
    ///
    /// - Parameters:
    ///   - trie: the retrieval answer; counts must be positive and never exceed the parent's.
    ///   - source: ``TokenSources/datastore`` or ``TokenSources/context``.
    ///   - vocabularySize: when given, every token must be below it.
    /// - Throws: ``TokenTreeError`` naming the first offending node; the tree is then empty.
    public mutating func replaceWithRetrieval(
        _ trie: CandidateTrie, source: TokenSources = .datastore, vocabularySize: Int? = nil
    ) throws {
        removeAll()
        do {
            try Self.checkLengths(input: "retrieval", trie.tokens.count, trie.parents.count, trie.counts.count)
            var rootSum: UInt64 = 0
            for i in trie.parents.indices where trie.parents[i] < 0 { rootSum += UInt64(trie.counts[i]) }
            let counted = trie.sampled ? rootSum : max(rootSum, UInt64(max(trie.occurrences, 0)))
            let total = Float(max(counted, 1))
            reserveCapacity(trie.count)
            for i in trie.tokens.indices {
                let count = trie.counts[i]
                let parent = Int(trie.parents[i])
                if count == 0 {
                    throw TokenTreeError(.invalidCount, input: "retrieval", index: i, "count is 0")
                }
                if parent >= 0 && parent < i && count > trie.counts[parent] {
                    throw TokenTreeError(.invalidCount, input: "retrieval", index: i,
                                         "count \(count) exceeds its parent's count \(trie.counts[parent])")
                }
                try append(token: trie.tokens[i], parent: parent, score: Float(count) / total, sources: source,
                           vocabularySize: vocabularySize, input: "retrieval")
            }
        } catch {
            removeAll()
            throw error
        }
    }

    /// Token path from the root to node `index`, inclusive.
    public func path(to index: Int) -> [UInt32] {
        treePath(to: index, tokens: tokens, parents: parents)
    }

    // MARK: - Internals

    /// Checks that parallel arrays have equal lengths within the node limit (not variadic: a
    /// variadic call allocates its array, and the `replace...` methods must not allocate).
    static func checkLengths(input: String, _ a: Int, _ b: Int, _ c: Int, _ d: Int? = nil) throws {
        guard a == b, a == c, d.map({ $0 == a }) ?? true else {
            let lengths = [a, b, c] + (d.map { [$0] } ?? [])
            throw TokenTreeError(.lengthMismatch, input: input,
                                 "arrays have different lengths (\(lengths.map(String.init).joined(separator: ", ")))")
        }
        if a > maximumCount {
            throw TokenTreeError(.tooManyNodes, input: input, "\(a) nodes")
        }
    }

    @discardableResult
    mutating func append(
        token: UInt32, parent: Int, score: Float, sources: TokenSources, vocabularySize: Int?, input: String
    ) throws -> Int {
        let index = count
        guard index < Self.maximumCount else {
            throw TokenTreeError(.tooManyNodes, input: input, index: index, "the tree is full")
        }
        guard parent >= -1 && parent < index else {
            throw TokenTreeError(.parentOrder, input: input, index: index,
                                 "parent \(parent) is not an earlier node or -1")
        }
        if let vocabularySize, Int(token) >= vocabularySize {
            throw TokenTreeError(.tokenOutOfVocabulary, input: input, index: index,
                                 "token \(token) is not below the vocabulary size \(vocabularySize)")
        }
        guard score >= 0, score.isFinite else {
            throw TokenTreeError(.invalidScore, input: input, index: index, "score \(score) is negative or not finite")
        }
        appendUnchecked(token: token, parent: Int32(parent),
                        depth: parent < 0 ? 1 : depths[parent] + 1, score: score, sources: sources)
        return index
    }

    /// Appends a node the caller has already validated.
    @inline(__always)
    mutating func appendUnchecked(token: UInt32, parent: Int32, depth: Int32, score: Float, sources: TokenSources) {
        tokens.append(token)
        parents.append(parent)
        depths.append(depth)
        // `+ 0` turns -0.0 into +0.0, so score bit patterns order like the scores (see fusion).
        scores.append(score + 0)
        self.sources.append(sources)
    }
}

/// Token path from the root to node `index`, inclusive, of a tree in flat arrays.
func treePath(to index: Int, tokens: [UInt32], parents: [Int32]) -> [UInt32] {
    var path: [UInt32] = []
    var i = index
    while i >= 0 {
        path.append(tokens[i])
        i = Int(parents[i])
    }
    return path.reversed()
}

// MARK: - Raw access for the per-step operations

extension TokenTree {
    /// Read-only views of a tree's arrays.
    struct Nodes {
        var tokens: UnsafeBufferPointer<UInt32>
        var parents: UnsafeBufferPointer<Int32>
        var depths: UnsafeBufferPointer<Int32>
        var scores: UnsafeBufferPointer<Float>
        var sources: UnsafeBufferPointer<TokenSources>
    }

    /// Writable views of a tree's arrays.
    struct MutableNodes {
        var tokens: UnsafeMutableBufferPointer<UInt32>
        var parents: UnsafeMutableBufferPointer<Int32>
        var depths: UnsafeMutableBufferPointer<Int32>
        var scores: UnsafeMutableBufferPointer<Float>
        var sources: UnsafeMutableBufferPointer<TokenSources>
    }

    /// Calls `body` with views of the arrays.
    func withNodes<R>(_ body: (Nodes) throws -> R) rethrows -> R {
        try tokens.withUnsafeBufferPointer { tokens in
            try parents.withUnsafeBufferPointer { parents in
                try depths.withUnsafeBufferPointer { depths in
                    try scores.withUnsafeBufferPointer { scores in
                        try sources.withUnsafeBufferPointer { sources in
                            try body(Nodes(tokens: tokens, parents: parents, depths: depths, scores: scores, sources: sources))
                        }
                    }
                }
            }
        }
    }

    /// Makes room for `capacity` nodes, calls `body` with writable views, and keeps the number
    /// of nodes `body` returns. The caller writes valid nodes (parents first, scores that are
    /// +0.0 or positive, finite).
    mutating func withWritableNodes(capacity: Int, _ body: (MutableNodes) -> Int) {
        tokens.resize(to: capacity, fill: 0)
        parents.resize(to: capacity, fill: 0)
        depths.resize(to: capacity, fill: 0)
        scores.resize(to: capacity, fill: 0)
        sources.resize(to: capacity, fill: [])
        let count = tokens.withUnsafeMutableBufferPointer { tokens in
            parents.withUnsafeMutableBufferPointer { parents in
                depths.withUnsafeMutableBufferPointer { depths in
                    scores.withUnsafeMutableBufferPointer { scores in
                        sources.withUnsafeMutableBufferPointer { sources in
                            body(MutableNodes(tokens: tokens, parents: parents, depths: depths, scores: scores,
                                                  sources: sources))
                        }
                    }
                }
            }
        }
        tokens.removeLast(capacity - count)
        parents.removeLast(capacity - count)
        depths.removeLast(capacity - count)
        scores.removeLast(capacity - count)
        sources.removeLast(capacity - count)
    }
}

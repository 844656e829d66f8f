/// The answer to a retrieval query: the most frequent continuations of the longest matching
/// context suffix, as a prefix-closed trie in flat arrays.
///
/// Node order is the ranking order: count descending, then depth ascending, then the parent's
/// position in this order, then token id ascending. Every parent therefore precedes its
/// children, and the first `k` nodes of an answer are exactly the answer for `maxNodes == k`.
public struct CandidateTrie: Sendable, Hashable {
    /// Length of the longest context suffix that occurs (0 when no suffix of at least
    /// `minMatch` tokens occurs; the trie is then empty).
    public var matchLength: Int
    /// How many times that suffix occurs (all occurrences, not a sample, unless `sampled`).
    public var occurrences: Int
    /// True when the counts come from an even sample of the occurrences instead of all of them.
    public var sampled: Bool
    /// Token of each node.
    public var tokens: [UInt32]
    /// Parent index of each node; -1 for children of the root (the next token).
    public var parents: [Int32]
    /// Number of occurrences whose continuation starts with the node's path.
    public var counts: [UInt32]

    /// Creates a trie from its parts; `tokens`, `parents` and `counts` must have equal lengths.
    public init(matchLength: Int, occurrences: Int, sampled: Bool = false, tokens: [UInt32], parents: [Int32], counts: [UInt32]) {
        precondition(tokens.count == parents.count && tokens.count == counts.count, "trie arrays differ in length")
        self.matchLength = matchLength
        self.occurrences = occurrences
        self.sampled = sampled
        self.tokens = tokens
        self.parents = parents
        self.counts = counts
    }

    /// An answer with no match.
    public static let empty = CandidateTrie(matchLength: 0, occurrences: 0, tokens: [], parents: [], counts: [])

    /// Number of nodes.
    public var count: Int { tokens.count }

    /// Depth of every node (1 for children of the root).
    public var depths: [Int32] {
        var depths = [Int32](repeating: 0, count: parents.count)
        for i in parents.indices {
            let p = Int(parents[i])
            depths[i] = p < 0 ? 1 : depths[p] + 1
        }
        return depths
    }

    /// Token path from the root to node `index`, inclusive.
    public func path(to index: Int) -> [UInt32] {
        treePath(to: index, tokens: tokens, parents: parents)
    }
}

/// Parameters of a retrieval query; the defaults are the design's.
public struct RetrievalParameters: Sendable, Hashable, Codable {
    /// Longest context suffix tried first.
    public var maxMatch: Int
    /// Shortest context suffix accepted as a match.
    public var minMatch: Int
    /// Tokens of continuation gathered after each occurrence.
    public var continuationLength: Int
    /// Most nodes returned.
    public var maxNodes: Int

    /// Creates parameters; defaults 16 / 2 / 10 / 64.
    public init(maxMatch: Int = 16, minMatch: Int = 2, continuationLength: Int = 10, maxNodes: Int = 64) {
        self.maxMatch = maxMatch
        self.minMatch = minMatch
        self.continuationLength = continuationLength
        self.maxNodes = maxNodes
    }

    /// Hard upper bounds that keep a single query's cost bounded.
    public static let limits = RetrievalParameters(maxMatch: 256, minMatch: 256, continuationLength: 64, maxNodes: 4096)

    /// Checks the parameters, returning a message for the user when they are unusable.
    public func validationError() -> String? {
        if minMatch < 1 { return "minMatch must be at least 1 (got \(minMatch))" }
        if maxMatch < minMatch { return "maxMatch (\(maxMatch)) must be at least minMatch (\(minMatch))" }
        if maxMatch > Self.limits.maxMatch { return "maxMatch must be at most \(Self.limits.maxMatch) (got \(maxMatch))" }
        if continuationLength < 1 || continuationLength > Self.limits.continuationLength {
            return "continuationLength must be between 1 and \(Self.limits.continuationLength) (got \(continuationLength))"
        }
        if maxNodes < 0 || maxNodes > Self.limits.maxNodes {
            return "maxNodes must be between 0 and \(Self.limits.maxNodes) (got \(maxNodes))"
        }
        return nil
    }
}

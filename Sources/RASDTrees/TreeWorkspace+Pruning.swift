extension TreeWorkspace {
    /// Prunes a retrieval tree with the drafter's distribution at the root (RASD step 3).
    ///
    /// Keeps exactly the retrieval branches whose first token is among the `topK` most probable
    /// tokens of `rootDistribution` (``TopTokens`` states the tie rule), with all their nodes,
    /// in the retrieval tree's order. Scores are rewritten so that they compare with draft
    /// scores: a kept first token scores its draft probability, and every deeper node scores its
    /// parent's score times its retrieval frequency relative to its parent (its count over the
    /// parent's count). Fusion then replaces the scores of nodes the draft tree covers with the
    /// draft's own.
    ///
    /// - Parameters:
    ///   - retrieval: a retrieval tree (``TokenTree/init(retrieval:source:vocabularySize:)``).
    ///   - rootDistribution: the drafter's probabilities for the token after the pending token,
    ///     indexed by token id; not renormalised, and never read past the selection pass.
    ///   - topK: how many of the drafter's most probable tokens a branch may start with.
    ///   - output: receives the pruned tree; its storage is reused.
    /// - Throws: ``TokenTreeError`` when `topK` is negative or a first token lies outside the
    ///   distribution's vocabulary (the tree and the drafter disagree on the tokenizer).
    public mutating func prune(
        retrieval: TokenTree, rootDistribution: UnsafeBufferPointer<Float>, topK: Int, into output: inout TokenTree
    ) throws {
        for i in retrieval.parents.indices where retrieval.parents[i] < 0 && Int(retrieval.tokens[i]) >= rootDistribution.count {
            output.removeAll()
            throw TokenTreeError(.tokenOutOfVocabulary, input: "retrieval", index: i,
                                 "token \(retrieval.tokens[i]) is outside the root distribution's \(rootDistribution.count) tokens")
        }
        try rootTop.select(from: rootDistribution, k: topK)
        prune(retrieval: retrieval, rootTop: rootTop, into: &output)
    }

    /// ``prune(retrieval:rootDistribution:topK:into:)`` over an array.
    public mutating func prune(
        retrieval: TokenTree, rootDistribution: [Float], topK: Int, into output: inout TokenTree
    ) throws {
        try rootDistribution.withUnsafeBufferPointer {
            try prune(retrieval: retrieval, rootDistribution: $0, topK: topK, into: &output)
        }
    }

    /// Prunes a retrieval tree with the drafter's top tokens at the root, when the drafter has
    /// already ranked them (it does to expand its own tree); saves the pass over the vocabulary.
    ///
    /// Same result as ``prune(retrieval:rootDistribution:topK:into:)`` when `rootTop` holds the
    /// distribution's top-k.
    public mutating func prune(retrieval: TokenTree, rootTop: TopTokens, into output: inout TokenTree) {
        let storage = prepare()
        let n = retrieval.count
        storage.pruneMap.reserve(n)
        let map = storage.pruneMap.base
        retrieval.withNodes { input in
            output.withWritableNodes(capacity: n) { out in
                var count = 0
                for i in 0..<n {
                    let parent = Int(input.parents[i])
                    let score: Float
                    let kept: Int32
                    if parent < 0 {
                        guard let probability = rootTop.probability(of: input.tokens[i]) else {
                            map[i] = -1
                            continue
                        }
                        kept = -1
                        score = probability
                    } else {
                        kept = map[parent]
                        guard kept >= 0 else {
                            map[i] = -1
                            continue
                        }
                        score = out.scores[Int(kept)] * Self.conditional(input.scores[i], given: input.scores[parent])
                    }
                    map[i] = Int32(count)
                    out.tokens[count] = input.tokens[i]
                    out.parents[count] = kept
                    out.depths[count] = input.depths[i]
                    out.scores[count] = score + 0  // -0.0 to +0.0 (see TokenTree.appendUnchecked)
                    out.sources[count] = input.sources[i]
                    count += 1
                }
                return count
            }
        }
    }

    /// A node's score relative to its parent's, in [0, 1]: its conditional probability when
    /// scores are path probabilities. 0 when the parent scores 0.
    @inline(__always)
    static func conditional(_ score: Float, given parentScore: Float) -> Float {
        parentScore > 0 ? min(1, score / parentScore) : 0
    }
}

extension TokenTree {
    /// Prunes `retrieval` with the drafter's distribution at the root; see
    /// ``TreeWorkspace/prune(retrieval:rootDistribution:topK:into:)``. Allocates; a decode loop
    /// uses a ``TreeWorkspace``.
    public static func prune(retrieval: TokenTree, rootDistribution: [Float], topK: Int) throws -> TokenTree {
        var workspace = TreeWorkspace()
        var output = TokenTree()
        try workspace.prune(retrieval: retrieval, rootDistribution: rootDistribution, topK: topK, into: &output)
        return output
    }

    /// Prunes `retrieval` with the drafter's ranked top tokens at the root; see
    /// ``TreeWorkspace/prune(retrieval:rootTop:into:)``.
    public static func prune(retrieval: TokenTree, rootTop: TopTokens) -> TokenTree {
        var workspace = TreeWorkspace()
        var output = TokenTree()
        workspace.prune(retrieval: retrieval, rootTop: rootTop, into: &output)
        return output
    }
}

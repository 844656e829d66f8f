import PropertyBased
import Testing
import RASDTrees

@Suite struct TopTokensTests {
    /// Rows of every length around the 64-value screening blocks, with ties, zeros, negatives,
    /// NaN and infinities-free noise: the selection equals sorting (p desc, token asc).
    @Test func selectionEqualsSorting() async {
        let input = generator { rng -> ([Float], Int) in
            let n = Int.random(in: 0...300, using: &rng)
            let levels: [Float] = [0, 0, -0.5, .nan, 1e-7, 0.001, 0.001, 0.01, 0.2, 0.2, 0.5]
            let row = (0..<n).map { _ in levels.randomElement(using: &rng)! }
            return (row, Int.random(in: 0...12, using: &rng))
        }
        var workspaceTop = TopTokens()
        await propertyCheck(count: 500, input: input) { (row, k) in
            let expected = bruteTopK(row.map { $0.isNaN ? -1 : $0 }, k)
            let top = try TopTokens(distribution: row, k: k)
            #expect(top.tokens == expected)
            #expect(top.probabilities == expected.map { row[Int($0)] })
            try workspaceTop.select(from: row, k: k)  // reused storage gives the same answer
            #expect(workspaceTop == top)
        }
    }

    @Test func negativeKIsAnError() {
        #expect(throws: TokenTreeError.self) { try TopTokens(distribution: [0.5, 0.5], k: -1) }
        #expect(throws: TokenTreeError.self) { try TopTokens(tokens: [1], probabilities: [2]) }
        #expect(throws: TokenTreeError.self) { try TopTokens(tokens: [1, 2], probabilities: [0.5]) }
    }
}

@Suite struct PruningTests {
    /// Pruning keeps exactly the branches whose first token is in the brute-force top-k, whole
    /// and in order, and scores them draft probability times retrieval frequency.
    @Test func keepsExactlyTheTopKBranches() async {
        let input = generator { rng -> (TokenTree, [Float], Int) in
            let vocabulary = Int.random(in: 2...8, using: &rng)
            return (randomRetrieval(&rng, vocabulary: vocabulary, maxNodes: 40),
                    randomDistribution(&rng, vocabulary: vocabulary), Int.random(in: 0...5, using: &rng))
        }
        var workspace = TreeWorkspace()
        var pruned = TokenTree()
        await propertyCheck(count: 400, input: input) { (retrieval, row, k) in
            let top = Set(bruteTopK(row, k))
            try workspace.prune(retrieval: retrieval, rootDistribution: row, topK: k, into: &pruned)
            #expect(structuralProblem(pruned) == nil)
            let expected = paths(retrieval).filter { top.contains($0[0]) }
            #expect(paths(pruned) == expected)
            for i in pruned.tokens.indices {
                let path = pruned.path(to: i)
                let source = paths(retrieval).firstIndex(of: path)!
                let first = paths(retrieval).firstIndex(of: [path[0]])!
                let score = row[Int(path[0])] * retrieval.scores[source] / retrieval.scores[first]
                #expect(abs(pruned.scores[i] - score) <= 1e-6 * max(1, score))
                #expect(pruned.sources[i] == retrieval.sources[source])
            }
            // The one-shot API and the drafter's-top-k entry point agree.
            #expect(try TokenTree.prune(retrieval: retrieval, rootDistribution: row, topK: k) == pruned)
            #expect(TokenTree.prune(retrieval: retrieval, rootTop: try TopTokens(distribution: row, k: k)) == pruned)
        }
    }

    @Test func firstTokenOutsideTheDistributionIsAnError() throws {
        let retrieval = try TokenTree(retrieval: CandidateTrie(matchLength: 2, occurrences: 2, tokens: [5], parents: [-1], counts: [2]))
        #expect(throws: TokenTreeError.self) {
            _ = try TokenTree.prune(retrieval: retrieval, rootDistribution: [0.5, 0.5], topK: 2)
        }
    }
}

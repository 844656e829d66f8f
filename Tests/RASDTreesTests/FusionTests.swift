import PropertyBased
import Testing
import RASDTrees

@Suite struct FusionTests {
    /// One decode step worked by hand (see the comments for the arithmetic).
    @Test func handWorkedStep() throws {
        // Draft: A(0.6), B(0.3), A->C (0.5, so 0.3).  Tokens: A=1 B=2 C=3 D=4 E=5.
        let draft = try TokenTree(draftTokens: [1, 2, 3], parents: [-1, -1, 0], probabilities: [0.6, 0.3, 0.5])
        // Retrieval, 10 occurrences: A 8, A C 6, A C D 6, E 2.
        let retrieval = try TokenTree(retrieval: CandidateTrie(
            matchLength: 4, occurrences: 10, tokens: [1, 3, 4, 5], parents: [-1, 0, 1, -1], counts: [8, 6, 6, 2]))
        // Drafter at the root: A 0.6, B 0.3, E 0.05: top-2 = {A, B}, so E is cut.
        var row = [Float](repeating: 0, count: 8)
        row[1] = 0.6; row[2] = 0.3; row[5] = 0.05
        let pruned = try TokenTree.prune(retrieval: retrieval, rootDistribution: row, topK: 2)
        #expect(pruned.tokens == [1, 3, 4])
        #expect(pruned.parents == [-1, 0, 1])
        // A 0.6 (draft), C 0.6 * 6/8 = 0.45, D 0.45 * 6/6.
        #expect(pruned.scores.map { ($0 * 1000).rounded() } == [600, 450, 450])

        // Fused: C is covered by the draft (0.3 wins over 0.45); D hangs below C at 0.3 * 1.
        // Ranking: A .6 | B .3 depth 1 | C .3 depth 2 | D .3 depth 3.
        let fused = try TokenTree.fuse(draft: draft, retrieval: pruned, budget: 4)
        #expect(fused.tokens == [1, 2, 3, 4])
        #expect(fused.parents == [-1, -1, 0, 2])
        #expect(fused.scores.map { ($0 * 1000).rounded() } == [600, 300, 300, 300])
        #expect(fused.sources == [[.draft, .datastore], .draft, [.draft, .datastore], .datastore])
        // Budget 3 cuts D, the lowest-ranked.
        #expect(try TokenTree.fuse(draft: draft, retrieval: pruned, budget: 3).tokens == [1, 2, 3])

        // Layout with pending token P=9: rows P, A, B, C, D.
        let layout = fused.layout(pendingToken: 9)
        #expect(layout.tokens == [9, 1, 2, 3, 4])
        #expect(layout.parents == [-1, 0, 0, 1, 3])
        #expect(layout.positions == [0, 1, 1, 2, 3])
        #expect(layout.treeIndices == [-1, 0, 1, 2, 3])
        #expect(layout.childOffsets == [1, 3, 4, 4, 5, 5])
        #expect(layout.mask == [0b1, 0b11, 0b101, 0b1011, 0b11011])
        #expect(layout.leaves == [2, 4])
        #expect(layout.pathWidth == 4)
        #expect(layout.paths == [0, 2, -1, -1, 0, 1, 3, 4])

        // The target agrees with A, C, D and then says 7.
        let accepted = try TreeVerification.acceptGreedy(tree: layout, targetArgmax: [1, 3, 0, 4, 7])
        #expect(accepted.rows == [1, 3, 4])
        #expect(accepted.tokens == [1, 3, 4])
        #expect(accepted.bonusToken == 7)
        #expect(accepted.acceptanceLength == 4)
        #expect(accepted.emittedTokens == [1, 3, 4, 7])
        #expect(layout.keptRows(for: accepted) == [0, 1, 3, 4])
    }

    /// With a budget at least the union's size, the fused tree holds every path of both inputs
    /// once; with any budget it is ancestor-closed, holds min(budget, union) nodes, and equals
    /// the brute-force union ranked by the documented rules.
    @Test func fusionContainsBothInputsAndRanksAsDocumented() async {
        let input = generator { rng -> (TokenTree, TokenTree, Int) in
            let vocabulary = Int.random(in: 2...6, using: &rng)
            return (randomDraft(&rng, vocabulary: vocabulary, maxNodes: 30),
                    randomRetrieval(&rng, vocabulary: vocabulary, maxNodes: 30), Int.random(in: 0...70, using: &rng))
        }
        var workspace = TreeWorkspace()
        var fused = TokenTree()
        await propertyCheck(count: 500, input: input) { (draft, retrieval, budget) in
            try workspace.fuse(draft: draft, retrieval: retrieval, budget: budget, into: &fused)
            #expect(structuralProblem(fused) == nil)
            let union = Set(paths(draft)).union(paths(retrieval))
            #expect(fused.count == min(budget, union.count))
            #expect(Set(paths(fused)).count == fused.count, "duplicates were not merged")
            #expect(Set(paths(fused)).isSubset(of: union))
            if budget >= union.count { #expect(Set(paths(fused)) == union) }
            for i in fused.tokens.indices where fused.parents[i] >= 0 {
                #expect(fused.scores[i] <= fused.scores[Int(fused.parents[i])])
            }
            let expected = bruteFuse([draft, retrieval], budget: budget)
            #expect(paths(fused) == expected.map(\.path))
            #expect(fused.scores == expected.map(\.score))
            #expect(fused.sources == expected.map(\.sources))
        }
    }

    /// Several retrieval trees (datastore and context) fuse like one union.
    @Test func severalRetrievalTrees() async {
        let input = generator { rng -> (TokenTree, TokenTree, TokenTree, Int) in
            let vocabulary = Int.random(in: 2...5, using: &rng)
            return (randomDraft(&rng, vocabulary: vocabulary, maxNodes: 20),
                    randomRetrieval(&rng, vocabulary: vocabulary, maxNodes: 20),
                    randomRetrieval(&rng, vocabulary: vocabulary, maxNodes: 20, source: .context),
                    Int.random(in: 0...60, using: &rng))
        }
        var workspace = TreeWorkspace()
        var fused = TokenTree()
        await propertyCheck(count: 300, input: input) { (draft, datastore, context, budget) in
            try workspace.startFusion(with: draft)
            try workspace.addToFusion(datastore)
            try workspace.addToFusion(context)
            try workspace.finishFusion(budget: budget, into: &fused)
            let expected = bruteFuse([draft, datastore, context], budget: budget)
            #expect(paths(fused) == expected.map(\.path))
            #expect(fused.scores == expected.map(\.score))
            #expect(fused.sources == expected.map(\.sources))
        }
    }

    /// Equal inputs give equal outputs, whatever the workspace ran before; copies of a
    /// workspace do not share buffers.
    @Test func deterministicAndIndependentOfHistory() throws {
        var rng = Xoshiro256(seed: 42)
        let cases = (0..<50).map { _ in
            (randomDraft(&rng, vocabulary: 5, maxNodes: 40), randomRetrieval(&rng, vocabulary: 5, maxNodes: 40))
        }
        var reused = TreeWorkspace()
        var output = TokenTree()
        for (draft, retrieval) in cases.reversed() { try reused.fuse(draft: draft, retrieval: retrieval, budget: 30, into: &output) }
        for (draft, retrieval) in cases {
            var copy = reused
            var copied = TokenTree()
            try copy.startFusion(with: retrieval)  // copy-on-write: must not disturb `reused`
            try reused.fuse(draft: draft, retrieval: retrieval, budget: 30, into: &output)
            try copy.fuse(draft: draft, retrieval: retrieval, budget: 30, into: &copied)
            let fresh = try TokenTree.fuse(draft: draft, retrieval: retrieval, budget: 30)
            #expect(output == fresh)
            #expect(copied == fresh)
        }
    }

    @Test func invalidBudgetIsAnError() throws {
        let tree = try TokenTree(draftTokens: [1], parents: [-1], probabilities: [1])
        #expect(throws: TokenTreeError.self) { _ = try TokenTree.fuse(draft: tree, retrieval: tree, budget: -1) }
        #expect(try TokenTree.fuse(draft: tree, retrieval: tree, budget: 0).isEmpty)
    }
}

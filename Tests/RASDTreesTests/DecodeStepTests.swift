import Testing
import RASDTrees

/// The README's decode-step example, run on realistic synthetic inputs.
@Suite struct DecodeStepTests {
    @Test func readmeDecodeStep() throws {
        let step = SyntheticTreeWorkload(seed: 7)
        let answer = step.retrieval
        let (draftTokens, draftParents, draftProbabilities) = (step.draftTokens, step.draftParents, step.draftProbabilities)
        let drafterRootRow = step.rootDistribution
        let pending = step.pendingToken

        // --- README example ---
        var workspace = TreeWorkspace()
        var draft = TokenTree(), retrieval = TokenTree(), pruned = TokenTree(), fused = TokenTree()
        var layout = TreeLayout()
        var accepted = AcceptedPath()

        // Every decode step (nothing below allocates once the buffers have grown):
        try draft.replaceWithDraft(tokens: draftTokens, parents: draftParents, probabilities: draftProbabilities)
        try retrieval.replaceWithRetrieval(answer, source: .datastore)  // a CandidateTrie
        try workspace.prune(retrieval: retrieval, rootDistribution: drafterRootRow, topK: 8, into: &pruned)
        try workspace.fuse(draft: draft, retrieval: pruned, budget: 64, into: &fused)
        workspace.layout(fused, pendingToken: pending, into: &layout)
        // The engine verifies layout.tokens / layout.parents and returns its argmax per row.
        let argmax = targetArgmax(layout)
        try TreeVerification.acceptGreedy(tree: layout, targetArgmax: argmax, into: &accepted)
        // Keep the KV of layout.keptRows(for: accepted), emit accepted.emittedTokens, and the
        // bonus token is the next step's pending token.
        // --- end ---

        #expect(step.draft.count == 60)
        #expect(retrieval.count == 64)
        #expect(fused.count == 64)
        #expect(Set(paths(fused)).isSubset(of: Set(paths(draft)).union(paths(pruned))))
        #expect(layout.count == 65 && layout.tokens[0] == pending)
        // This target follows every row's first child, so acceptance runs to a leaf.
        #expect(accepted.rows.count == Int(layout.positions[Int(layout.keptRows(for: accepted).last!)]))
        #expect(layout.children(of: Int(accepted.rows.last ?? 0)).isEmpty)
        #expect(accepted.emittedTokens.count == accepted.acceptanceLength)
    }

    /// A target that agrees with each row's first child.
    func targetArgmax(_ layout: TreeLayout) -> [UInt32] {
        (0..<layout.count).map { row in
            let children = layout.children(of: row)
            return children.isEmpty ? 0 : layout.tokens[children.lowerBound]
        }
    }

    /// The synthetic workload is deterministic and shaped as documented.
    @Test func syntheticWorkloadIsDeterministic() throws {
        let a = SyntheticTreeWorkload(seed: 3), b = SyntheticTreeWorkload(seed: 3), c = SyntheticTreeWorkload(seed: 4)
        #expect(a.draft == b.draft && a.retrieval == b.retrieval && a.rootDistribution == b.rootDistribution)
        #expect(a.draft != c.draft)
        #expect(abs(a.rootDistribution.reduce(0, +) - 1) < 1e-3)
        let trie = try TokenTree(retrieval: a.retrieval)  // validates counts and parent order
        #expect(trie.count == 64)
        #expect(zip(a.retrieval.counts, a.retrieval.counts.dropFirst()).allSatisfy { $0 >= $1 })
    }
}

import PropertyBased
import Testing
import RASDTrees

/// A deterministic target model over a tiny vocabulary: the argmax after a context is a hash of
/// the context, but it follows one of the tree's proposals half of the time so that long
/// acceptances happen.
struct GreedyOracle {
    let salt: UInt64
    let vocabulary: Int
    let proposals: [[UInt32]: [UInt32]]  // path -> child tokens in the tree

    func next(_ context: [UInt32]) -> UInt32 {
        var h = salt
        for t in context { h = (h ^ UInt64(t)) &* 0x100_0000_01B3 }
        h ^= h >> 29
        if let children = proposals[context], !children.isEmpty, h & 1 == 0 {
            return children[Int((h >> 1) % UInt64(children.count))]
        }
        return UInt32((h >> 7) % UInt64(vocabulary))
    }
}

@Suite struct GreedyAcceptanceTests {
    /// Greedy acceptance emits exactly what step-by-step greedy decoding of the target emits
    /// for as long as the tree holds its tokens, plus the next one.
    @Test func equalsStepByStepGreedyDecoding() async {
        let input = generator { rng -> (TokenTree, UInt32?, UInt64) in
            let vocabulary = Int.random(in: 2...4, using: &rng)
            let tree = Bool.random(using: &rng)
                ? randomDraft(&rng, vocabulary: vocabulary, maxNodes: 60)
                : (try? TokenTree.fuse(draft: randomDraft(&rng, vocabulary: vocabulary, maxNodes: 30),
                                       retrieval: randomRetrieval(&rng, vocabulary: vocabulary, maxNodes: 30),
                                       budget: 40)) ?? TokenTree()
            return (tree, Bool.random(using: &rng) ? UInt32(vocabulary - 1) : nil, rng.next())
        }
        var accepted = AcceptedPath()
        await propertyCheck(count: 500, input: input) { (tree, pendingToken, salt) in
            // Contexts are paths below the committed context; the pending token, when present,
            // is the last committed-but-not-computed token and starts every context.
            let prefix = pendingToken.map { [$0] } ?? []
            var proposals: [[UInt32]: [UInt32]] = [:]
            for path in [[]] + paths(tree) { proposals[prefix + path] = [] }
            for i in tree.tokens.indices { proposals[prefix + Array(tree.path(to: i).dropLast()), default: []].append(tree.tokens[i]) }
            let oracle = GreedyOracle(salt: salt, vocabulary: 4, proposals: proposals)

            let layout = tree.layout(pendingToken: pendingToken)
            let argmax = (0..<layout.count).map { row -> UInt32 in
                var path: [UInt32] = []
                var r = row
                while r >= 0 { path.append(layout.tokens[r]); r = Int(layout.parents[r]) }
                return oracle.next(Array(path.reversed()))
            }
            try TreeVerification.acceptGreedy(tree: layout, targetArgmax: argmax,
                                              rootArgmax: pendingToken == nil ? oracle.next([]) : nil, into: &accepted)

            // Reference: decode greedily, one token at a time, while the tree has the path.
            let treePaths = Set(paths(tree))
            var generated: [UInt32] = []
            var bonus: UInt32 = 0
            while true {
                let token = oracle.next(prefix + generated)
                if treePaths.contains(generated + [token]) {
                    generated.append(token)
                } else {
                    bonus = token
                    break
                }
            }
            #expect(accepted.tokens == generated)
            #expect(accepted.bonusToken == bonus)
            // The rows form a parent chain from the top.
            var parent = pendingToken == nil ? -1 : 0
            for row in accepted.rows {
                #expect(Int(layout.parents[Int(row)]) == parent)
                parent = Int(row)
            }
        }
    }

    @Test func predictionShapeErrors() throws {
        let tree = try TokenTree(draftTokens: [1, 2], parents: [-1, 0], probabilities: [1, 1])
        let layout = tree.layout(pendingToken: 0)
        #expect(throws: TokenTreeError.self) { _ = try TreeVerification.acceptGreedy(tree: layout, targetArgmax: [1, 2]) }
        let bare = tree.layout(pendingToken: nil)
        #expect(throws: TokenTreeError.self) { _ = try TreeVerification.acceptGreedy(tree: bare, targetArgmax: [2, 3]) }
        #expect(try TreeVerification.acceptGreedy(tree: bare, targetArgmax: [2, 3], rootArgmax: 1).emittedTokens == [1, 2, 3])
        var rng = Xoshiro256(seed: 1)
        #expect(throws: TokenTreeError.self) {
            _ = try TreeVerification.acceptSampling(tree: layout, targetProbabilities: [Float](repeating: 0.25, count: 10), rng: &rng)
        }
        #expect(throws: TokenTreeError.self) {  // a negative entry in a visited row
            _ = try TreeVerification.acceptSampling(tree: layout, targetProbabilities: [-1, 1, 1, 1, 1, 1, 1, 1, 1], rng: &rng)
        }
        #expect(throws: TokenTreeError.self) {  // a proposed token outside the rows
            let wide = try TokenTree(draftTokens: [5], parents: [-1], probabilities: [1]).layout(pendingToken: 0)
            _ = try TreeVerification.acceptSampling(tree: wide, targetProbabilities: [Float](repeating: 1, count: 6), rng: &rng)
        }
    }
}

import RASDTrees

/// Per-connection scratch for the tree operations, reused from request to request. A class, so
/// that one operation may read one field while writing another (distinct exclusive accesses).
final class TreeScratch {
    var workspace = TreeWorkspace()
    var fuseRequest = TreeFuseRequest()
    var greedyRequest = AcceptGreedyRequest()
    var draft = TokenTree()
    var retrieval = TokenTree()
    var pruned = TokenTree()
    var fused = TokenTree()
    /// A layout's rows rebuilt as a tree, for acceptance requests.
    var rowTree = TokenTree()
    var layout = TreeLayout()
    var accepted = AcceptedPath()
    var rowTokens: [UInt32] = []
    var rowParents: [Int32] = []
    var distributions: [Float] = []
    var sparseTokens: [UInt32] = []
    var sparseProbabilities: [Float] = []
    var sparseOffsets: [Int] = []
    var vocabulary: [UInt32] = []
}

extension Connection {
    func treeFuse(_ payload: UnsafeRawBufferPointer) throws {
        var r = WireReader(payload, message: "TREE_FUSE")
        try trees.fuseRequest.decode(&r)
        try r.finish()
        let request = trees.fuseRequest
        guard request.budget <= TokenTree.maximumCount else {
            throw ServiceError(.invalidParameters, "TREE_FUSE: budget \(request.budget) exceeds \(TokenTree.maximumCount)")
        }
        if let v = request.vocabularySize {
            for (i, t) in request.rootTopTokens.enumerated() where Int(t) >= v {
                throw ServiceError(.invalidTree, "TREE_FUSE: root top token \(i) is \(t), not below the vocabulary size \(v)")
            }
            if let p = request.pendingToken, Int(p) >= v {
                throw ServiceError(.invalidTree, "TREE_FUSE: the pending token \(p) is not below the vocabulary size \(v)")
            }
        }
        do {
            let rootTop = try TopTokens(tokens: request.rootTopTokens, probabilities: request.rootTopProbabilities)
            try trees.draft.replaceWithDraft(
                tokens: request.draftTokens, parents: request.draftParents, probabilities: request.draftProbabilities,
                vocabularySize: request.vocabularySize)
            try trees.workspace.startFusion(with: trees.draft)
            for input in request.retrievals {
                try trees.retrieval.replaceWithRetrieval(input.trie, source: input.source, vocabularySize: request.vocabularySize)
                trees.workspace.prune(retrieval: trees.retrieval, rootTop: rootTop, into: &trees.pruned)
                try trees.workspace.addToFusion(trees.pruned)
            }
            try trees.workspace.finishFusion(budget: request.budget, into: &trees.fused)
        } catch let error as TokenTreeError {
            throw ServiceError(error.kind == .invalidArgument ? .invalidParameters : .invalidTree, "TREE_FUSE: \(error)")
        }
        trees.workspace.layout(trees.fused, pendingToken: request.pendingToken, into: &trees.layout)
        FusedTreeReply.encode(tree: trees.fused, layout: trees.layout, into: &output)
    }

    func treeAcceptGreedy(_ payload: UnsafeRawBufferPointer) throws {
        var r = WireReader(payload, message: "TREE_ACCEPT_GREEDY")
        try trees.greedyRequest.decode(&r)
        try r.finish()
        let request = trees.greedyRequest
        try rebuildLayout(tokens: request.tokens, parents: request.parents, hasPendingToken: request.hasPendingToken,
                          message: "TREE_ACCEPT_GREEDY")
        do {
            try TreeVerification.acceptGreedy(
                tree: trees.layout, targetArgmax: request.targetArgmax, rootArgmax: request.rootArgmax, into: &trees.accepted)
        } catch let error as TokenTreeError {
            throw ServiceError(.invalidTree, "TREE_ACCEPT_GREEDY: \(error)")
        }
        AcceptanceReply.encode(trees.accepted, into: &output)
    }

    func treeAcceptSampling(_ payload: UnsafeRawBufferPointer) throws {
        let message = "TREE_ACCEPT_SAMPLING"
        var r = WireReader(payload, message: message)
        let flags = try r.read(UInt32.self, "flags")
        let hasPending = flags & 1 != 0, sparse = flags & 2 != 0
        var rng = Xoshiro256(seed: try r.read(UInt64.self, "seed"))
        let vocabularySize = Int(try r.read(UInt32.self, "vocabulary size"))
        guard vocabularySize >= 1 else { throw ServiceError(.invalidParameters, "\(message): the vocabulary size is 0") }
        let rows = try r.readCount("layout rows", elementBytes: 8, limit: TokenTree.maximumCount + 1)
        try r.read(rows, into: &trees.rowTokens, "layout tokens")
        try r.read(rows, into: &trees.rowParents, "layout parents")
        let distributions = rows + (hasPending ? 0 : 1)
        for (row, token) in trees.rowTokens.enumerated() where Int(token) >= vocabularySize && !(hasPending && row == 0) {
            throw ServiceError(.invalidTree, "\(message): row \(row) proposes token \(token), not below the vocabulary size \(vocabularySize)")
        }

        var tokens = trees.rowTokens
        let width: Int
        if sparse {
            // Sparse rows become dense rows over the tokens that occur (ids kept in ascending
            // order): acceptance scans tokens in id order and skips zeros, so the compact rows
            // give exactly the draws and the result of the full rows.
            trees.sparseTokens.removeAll(keepingCapacity: true)
            trees.sparseProbabilities.removeAll(keepingCapacity: true)
            trees.sparseOffsets.removeAll(keepingCapacity: true)
            trees.sparseOffsets.append(0)
            var row: [UInt32] = [], probabilities: [Float] = []
            for d in 0..<distributions {
                let k = try r.readCount("entries of distribution \(d)", elementBytes: 8, limit: vocabularySize)
                try r.read(k, into: &row, "tokens of distribution \(d)")
                try r.read(k, into: &probabilities, "probabilities of distribution \(d)")
                for (i, t) in row.enumerated() {
                    guard Int(t) < vocabularySize else {
                        throw ServiceError(.invalidTree, "\(message): distribution \(d) lists token \(t), not below the vocabulary size \(vocabularySize)")
                    }
                    guard probabilities[i] >= 0, probabilities[i].isFinite else {
                        throw ServiceError(.invalidTree, "\(message): distribution \(d) gives token \(t) the probability \(probabilities[i])")
                    }
                }
                trees.sparseTokens += row
                trees.sparseProbabilities += probabilities
                trees.sparseOffsets.append(trees.sparseTokens.count)
            }
            trees.vocabulary = Array(Set(trees.sparseTokens).union(hasPending ? tokens.dropFirst() : tokens[...])).sorted()
            width = max(trees.vocabulary.count, 1)
            func compact(_ t: UInt32) -> UInt32 {
                var lo = 0, hi = trees.vocabulary.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if trees.vocabulary[mid] < t { lo = mid + 1 } else { hi = mid }
                }
                return UInt32(lo)
            }
            trees.distributions.removeAll(keepingCapacity: true)
            trees.distributions.append(contentsOf: repeatElement(0, count: distributions * width))
            for d in 0..<distributions {
                for e in trees.sparseOffsets[d]..<trees.sparseOffsets[d + 1] {
                    let column = Int(compact(trees.sparseTokens[e]))
                    if trees.distributions[d * width + column] != 0 {
                        throw ServiceError(.invalidTree, "\(message): distribution \(d) lists token \(trees.sparseTokens[e]) twice")
                    }
                    trees.distributions[d * width + column] = trees.sparseProbabilities[e]
                }
            }
            for i in tokens.indices where !(hasPending && i == 0) { tokens[i] = compact(tokens[i]) }
        } else {
            width = vocabularySize
            let n = distributions * width
            try r.read(n, into: &trees.distributions, "distributions (\(distributions) rows of \(width))")
        }
        try r.finish()

        try rebuildLayout(tokens: tokens, parents: trees.rowParents, hasPendingToken: hasPending, message: message)
        do {
            try trees.distributions.withUnsafeBufferPointer { all in
                let rootRows = hasPending ? 0 : width
                let root = hasPending ? nil : UnsafeBufferPointer(rebasing: all[0..<rootRows])
                try TreeVerification.acceptSampling(
                    tree: trees.layout, targetProbabilities: UnsafeBufferPointer(rebasing: all[rootRows...]),
                    rootProbabilities: root, rng: &rng, into: &trees.accepted)
            }
        } catch let error as TokenTreeError {
            throw ServiceError(.invalidTree, "\(message): \(error)")
        }
        if sparse {
            // Back from compact ids to token ids.
            var reply = AcceptanceReply(trees.accepted)
            reply.tokens = reply.rows.map { trees.rowTokens[Int($0)] }
            reply.bonusToken = trees.vocabulary.isEmpty ? 0 : trees.vocabulary[Int(trees.accepted.bonusToken)]
            output.append(UInt32(reply.rows.count))
            output.append(contentsOf: reply.rows)
            output.append(contentsOf: reply.tokens)
            output.append(reply.bonusToken)
        } else {
            AcceptanceReply.encode(trees.accepted, into: &output)
        }
    }

    /// Rebuilds the layout whose rows a client sends back: the rows as a tree, laid out again,
    /// must give the same rows (TREE_FUSE's breadth-first order), so the client's predictions
    /// index the same rows here.
    private func rebuildLayout(tokens: [UInt32], parents: [Int32], hasPendingToken: Bool, message: String) throws {
        guard tokens.count == parents.count else {
            throw ServiceError(.invalidTree, "\(message): \(tokens.count) tokens but \(parents.count) parents")
        }
        let first = hasPendingToken ? 1 : 0
        if hasPendingToken {
            guard let p = parents.first, p == -1 else {
                throw ServiceError(.invalidTree, "\(message): row 0 is the pending token and needs parent -1")
            }
        }
        trees.rowTree.removeAll()
        for row in first..<tokens.count {
            let parent = Int(parents[row])
            guard parent < row, parent >= (hasPendingToken ? 0 : -1) else {
                throw ServiceError(.invalidTree,
                    "\(message): row \(row) has parent \(parent); parents precede their rows"
                        + (hasPendingToken ? " and every row but the pending token hangs below a row" : ""))
            }
            do {
                try trees.rowTree.append(token: tokens[row], parent: parent - first, score: 1, sources: .draft)
            } catch {
                throw ServiceError(.invalidTree, "\(message): row \(row): \(error)")
            }
        }
        trees.workspace.layout(trees.rowTree, pendingToken: hasPendingToken ? tokens.first : nil, into: &trees.layout)
        guard trees.layout.tokens == tokens, trees.layout.parents == parents else {
            throw ServiceError(.invalidTree,
                "\(message): the rows are not in the breadth-first order TREE_FUSE lays out; send the layout's tokens and parents unchanged")
        }
    }
}

import RASDTrees

/// A retrieval trie for TREE_FUSE and where it came from.
public struct RetrievalInput: Sendable, Hashable {
    /// The trie, as RETRIEVE returned it (or from any other retrieval).
    public var trie: CandidateTrie
    /// ``TokenSources/datastore`` or ``TokenSources/context``.
    public var source: TokenSources

    public init(trie: CandidateTrie, source: TokenSources = .datastore) {
        self.trie = trie
        self.source = source
    }
}

/// TREE_FUSE: prune retrieval tries with the drafter's top tokens at the root, fuse them with
/// the draft tree, lay the result out (RASD steps 3-5; see ``TreeWorkspace``).
///
/// Payload: `u32` budget, `u32` flags (bit 0: has pending token), `u32` pending token, `u32`
/// vocabulary size (0: unchecked), root top-k (`u32` k, tokens `u32[k]`, probabilities
/// `f32[k]`), draft tree (`u32` n, tokens `u32[n]`, parents `i32[n]`, probabilities `f32[n]`,
/// each given its parent), `u32` tries, each a `u32` source (2 datastore, 4 context) and a trie
/// as in a RETRIEVE reply.
public struct TreeFuseRequest: Sendable, Hashable {
    public var draftTokens: [UInt32] = []
    public var draftParents: [Int32] = []
    /// Each draft node's probability given its parent's path.
    public var draftProbabilities: [Float] = []
    public var retrievals: [RetrievalInput] = []
    /// The drafter's most probable tokens at the root, most probable first.
    public var rootTopTokens: [UInt32] = []
    public var rootTopProbabilities: [Float] = []
    /// Most speculative nodes in the fused tree.
    public var budget = 64
    /// The last accepted token, laid out as row 0 (nil: the tree hangs off the context).
    public var pendingToken: UInt32?
    /// When given, every token must be below it.
    public var vocabularySize: Int?

    public init() {}

    public func encode(into w: inout WireWriter) {
        w.append(UInt32(clamping: budget))
        w.append(UInt32(pendingToken == nil ? 0 : 1))
        w.append(pendingToken ?? 0)
        w.append(UInt32(clamping: vocabularySize ?? 0))
        w.append(UInt32(truncatingIfNeeded: rootTopTokens.count))
        w.append(contentsOf: rootTopTokens)
        w.append(contentsOf: rootTopProbabilities)
        w.append(UInt32(truncatingIfNeeded: draftTokens.count))
        w.append(contentsOf: draftTokens)
        w.append(contentsOf: draftParents)
        w.append(contentsOf: draftProbabilities)
        w.append(UInt32(truncatingIfNeeded: retrievals.count))
        for input in retrievals {
            w.append(UInt32(input.source.rawValue))
            RetrievalCodec.encode(input.trie, into: &w)
        }
    }

    /// Decodes a request into `self`, reusing its storage.
    public mutating func decode(_ r: inout WireReader) throws {
        budget = Int(try r.read(UInt32.self, "budget"))
        let flags = try r.read(UInt32.self, "flags")
        let pending = try r.read(UInt32.self, "pending token")
        pendingToken = flags & 1 != 0 ? pending : nil
        let vocabulary = try r.read(UInt32.self, "vocabulary size")
        vocabularySize = vocabulary == 0 ? nil : Int(vocabulary)
        let k = try r.readCount("root top tokens", elementBytes: 8)
        try r.read(k, into: &rootTopTokens, "root top tokens")
        try r.read(k, into: &rootTopProbabilities, "root top probabilities")
        let n = try r.readCount("draft nodes", elementBytes: 12, limit: TokenTree.maximumCount)
        try r.read(n, into: &draftTokens, "draft tokens")
        try r.read(n, into: &draftParents, "draft parents")
        try r.read(n, into: &draftProbabilities, "draft probabilities")
        let tries = try r.readCount("retrieval tries", elementBytes: 24, limit: ServiceProtocol.maxFuseRetrievals)
        if retrievals.count > tries { retrievals.removeLast(retrievals.count - tries) }
        for i in 0..<tries {
            let raw = try r.read(UInt32.self, "source of retrieval trie \(i)")
            let source = TokenSources(rawValue: UInt8(truncatingIfNeeded: raw))
            guard raw == UInt32(TokenSources.datastore.rawValue) || raw == UInt32(TokenSources.context.rawValue) else {
                throw ServiceError(.invalidTree, "TREE_FUSE: retrieval trie \(i) has source \(raw), not 2 (datastore) or 4 (context)")
            }
            if i == retrievals.count { retrievals.append(RetrievalInput(trie: .empty, source: source)) }
            retrievals[i].source = source
            try RetrievalCodec.decode(&r, into: &retrievals[i].trie)
        }
    }
}

/// The rows of a ``TreeLayout`` as plain arrays, as TREE_FUSE returns them (see ``TreeLayout``
/// for the meaning of every field).
public struct LayoutRows: Sendable, Hashable {
    public var hasPendingToken = false
    public var tokens: [UInt32] = []
    public var parents: [Int32] = []
    public var positions: [Int32] = []
    public var treeIndices: [Int32] = []
    public var childOffsets: [Int32] = []
    public var topLevelCount = 0
    public var mask: [UInt64] = []
    public var maskWordsPerRow = 0
    public var leaves: [Int32] = []
    public var paths: [Int32] = []
    public var pathWidth = 0

    public init() {}

    /// The rows of `layout`.
    public init(_ layout: TreeLayout) {
        hasPendingToken = layout.hasPendingToken
        tokens = layout.tokens
        parents = layout.parents
        positions = layout.positions
        treeIndices = layout.treeIndices
        childOffsets = layout.childOffsets
        topLevelCount = layout.topLevelCount
        mask = layout.mask
        maskWordsPerRow = layout.maskWordsPerRow
        leaves = layout.leaves
        paths = layout.paths
        pathWidth = layout.pathWidth
    }

    /// Number of rows.
    public var count: Int { tokens.count }

    /// `u32` rows, flags (bit 0: pending token), topLevelCount, maskWordsPerRow, pathWidth,
    /// leaves; then tokens, parents, positions, treeIndices, childOffsets (rows + 1), mask
    /// (`u64[rows * maskWordsPerRow]`), leaves, paths (`i32[leaves * pathWidth]`).
    static func encode(_ layout: TreeLayout, into w: inout WireWriter) {
        w.append(UInt32(layout.count))
        w.append(UInt32(layout.hasPendingToken ? 1 : 0))
        w.append(UInt32(layout.topLevelCount))
        w.append(UInt32(layout.maskWordsPerRow))
        w.append(UInt32(layout.pathWidth))
        w.append(UInt32(layout.leaves.count))
        w.append(contentsOf: layout.tokens)
        w.append(contentsOf: layout.parents)
        w.append(contentsOf: layout.positions)
        w.append(contentsOf: layout.treeIndices)
        w.append(contentsOf: layout.childOffsets)
        w.append(contentsOf: layout.mask)
        w.append(contentsOf: layout.leaves)
        w.append(contentsOf: layout.paths)
    }

    static func decode(_ r: inout WireReader) throws -> LayoutRows {
        var l = LayoutRows()
        let rows = Int(try r.read(UInt32.self, "layout rows"))
        l.hasPendingToken = try r.read(UInt32.self, "layout flags") & 1 != 0
        l.topLevelCount = Int(try r.read(UInt32.self, "topLevelCount"))
        l.maskWordsPerRow = Int(try r.read(UInt32.self, "maskWordsPerRow"))
        l.pathWidth = Int(try r.read(UInt32.self, "pathWidth"))
        let leaves = Int(try r.read(UInt32.self, "leaf count"))
        try r.read(rows, into: &l.tokens, "layout tokens")
        try r.read(rows, into: &l.parents, "layout parents")
        try r.read(rows, into: &l.positions, "positions")
        try r.read(rows, into: &l.treeIndices, "tree indices")
        try r.read(rows + 1, into: &l.childOffsets, "child offsets")
        try r.read(rows * l.maskWordsPerRow, into: &l.mask, "mask")
        try r.read(leaves, into: &l.leaves, "leaves")
        try r.read(leaves * l.pathWidth, into: &l.paths, "paths")
        return l
    }
}

/// The reply to TREE_FUSE: the fused tree (in ranking order) and its layout.
///
/// Payload: `u32` n, tokens `u32[n]`, parents `i32[n]`, depths `i32[n]`, scores `f32[n]`,
/// sources `u8[n]`; then the layout (``LayoutRows``).
public struct FusedTreeReply: Sendable, Hashable {
    public var tokens: [UInt32] = []
    public var parents: [Int32] = []
    public var depths: [Int32] = []
    public var scores: [Float] = []
    public var sources: [TokenSources] = []
    public var layout = LayoutRows()

    public init() {}

    static func encode(tree: TokenTree, layout: TreeLayout, into w: inout WireWriter) {
        w.append(UInt32(tree.count))
        w.append(contentsOf: tree.tokens)
        w.append(contentsOf: tree.parents)
        w.append(contentsOf: tree.depths)
        w.append(contentsOf: tree.scores)
        for s in tree.sources { w.append(s.rawValue) }
        LayoutRows.encode(layout, into: &w)
    }

    static func decode(_ r: inout WireReader) throws -> FusedTreeReply {
        var reply = FusedTreeReply()
        let n = try r.readCount("fused nodes", elementBytes: 17)
        try r.read(n, into: &reply.tokens, "fused tokens")
        try r.read(n, into: &reply.parents, "fused parents")
        try r.read(n, into: &reply.depths, "fused depths")
        try r.read(n, into: &reply.scores, "fused scores")
        reply.sources = try r.readBytes(n, "fused sources").map { TokenSources(rawValue: $0) }
        reply.layout = try LayoutRows.decode(&r)
        return reply
    }
}

/// TREE_ACCEPT_GREEDY: the layout's rows and the target's argmax after every row.
///
/// Payload: `u32` flags (bit 0: row 0 is the pending token), `u32` rows, tokens `u32[rows]`,
/// parents `i32[rows]`, `u32` root argmax (used without a pending token), `u32` m, argmax
/// `u32[m]` (m must equal rows).
public struct AcceptGreedyRequest: Sendable, Hashable {
    public var hasPendingToken = true
    /// The layout's tokens and parents, exactly as TREE_FUSE returned them.
    public var tokens: [UInt32] = []
    public var parents: [Int32] = []
    public var targetArgmax: [UInt32] = []
    public var rootArgmax: UInt32?

    public init() {}

    public func encode(into w: inout WireWriter) {
        w.append(UInt32(hasPendingToken ? 1 : 0))
        w.append(UInt32(truncatingIfNeeded: tokens.count))
        w.append(contentsOf: tokens)
        w.append(contentsOf: parents)
        w.append(rootArgmax ?? 0)
        w.append(UInt32(truncatingIfNeeded: targetArgmax.count))
        w.append(contentsOf: targetArgmax)
    }

    public mutating func decode(_ r: inout WireReader) throws {
        hasPendingToken = try r.read(UInt32.self, "flags") & 1 != 0
        let rows = try r.readCount("layout rows", elementBytes: 8, limit: TokenTree.maximumCount + 1)
        try r.read(rows, into: &tokens, "layout tokens")
        try r.read(rows, into: &parents, "layout parents")
        let root = try r.read(UInt32.self, "root argmax")
        rootArgmax = hasPendingToken ? nil : root
        let m = try r.readCount("argmax entries", elementBytes: 4)
        try r.read(m, into: &targetArgmax, "argmax")
    }
}

/// TREE_ACCEPT_SAMPLING: the layout's rows, the target's distribution after every row (root
/// row first when there is no pending token) and a seed for the generator (``Xoshiro256``).
///
/// Payload: `u32` flags (bit 0: pending token, bit 1: sparse rows), `u64` seed, `u32`
/// vocabulary size, `u32` rows, tokens, parents; then the distributions: dense, `f32[V]` per
/// row; or sparse, per row `u32` k, token ids `u32[k]` (distinct, below V) and their
/// probabilities `f32[k]` (all other tokens 0). Sparse rows give exactly the dense result.
public struct AcceptSamplingRequest: Sendable, Hashable {
    /// One distribution over a vocabulary, listing only the tokens with probability.
    public struct SparseRow: Sendable, Hashable {
        public var tokens: [UInt32]
        public var probabilities: [Float]
        public init(tokens: [UInt32], probabilities: [Float]) {
            self.tokens = tokens
            self.probabilities = probabilities
        }
    }

    public var hasPendingToken = true
    public var tokens: [UInt32] = []
    public var parents: [Int32] = []
    public var seed: UInt64 = 0
    public var vocabularySize = 0
    /// Dense rows, row-major (`vocabularySize` each); used when `sparseRows` is nil.
    public var denseRows: [Float] = []
    /// Sparse rows, one per distribution.
    public var sparseRows: [SparseRow]?

    public init() {}

    public func encode(into w: inout WireWriter) {
        w.append(UInt32((hasPendingToken ? 1 : 0) | (sparseRows == nil ? 0 : 2)))
        w.append(seed)
        w.append(UInt32(clamping: vocabularySize))
        w.append(UInt32(truncatingIfNeeded: tokens.count))
        w.append(contentsOf: tokens)
        w.append(contentsOf: parents)
        if let sparseRows {
            for row in sparseRows {
                w.append(UInt32(truncatingIfNeeded: row.tokens.count))
                w.append(contentsOf: row.tokens)
                w.append(contentsOf: row.probabilities)
            }
        } else {
            w.append(contentsOf: denseRows)
        }
    }
}

/// The reply to both acceptance requests: the accepted rows (from the top down, never the
/// pending token's), their tokens and the bonus token.
///
/// Payload: `u32` count, rows `i32[count]`, tokens `u32[count]`, `u32` bonus token.
public struct AcceptanceReply: Sendable, Hashable {
    public var rows: [Int32] = []
    public var tokens: [UInt32] = []
    public var bonusToken: UInt32 = 0

    public init() {}

    /// The reply matching an ``AcceptedPath``.
    public init(_ path: AcceptedPath) {
        rows = path.rows
        tokens = path.tokens
        bonusToken = path.bonusToken
    }

    static func encode(_ path: AcceptedPath, into w: inout WireWriter) {
        w.append(UInt32(path.rows.count))
        w.append(contentsOf: path.rows)
        w.append(contentsOf: path.tokens)
        w.append(path.bonusToken)
    }

    static func decode(_ r: inout WireReader) throws -> AcceptanceReply {
        var reply = AcceptanceReply()
        let n = try r.readCount("accepted rows", elementBytes: 8)
        try r.read(n, into: &reply.rows, "accepted rows")
        try r.read(n, into: &reply.tokens, "accepted tokens")
        reply.bonusToken = try r.read(UInt32.self, "bonus token")
        return reply
    }
}

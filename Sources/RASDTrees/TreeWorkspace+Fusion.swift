extension TreeWorkspace {
    /// Fuses a draft tree and a retrieval tree into one tree of at most `budget` nodes (RASD
    /// step 4).
    ///
    /// **Longest prefix match.** Every path of either tree walks down the tree built so far as
    /// far as its tokens match and hangs its unmatched rest below the deepest match; equal paths
    /// merge into one node, which carries the union of their sources.
    ///
    /// **Scores.** A node the draft covers (a node with source ``TokenSources/draft``) keeps the
    /// draft's score; any other node scores its fused parent's score times its own score
    /// relative to its parent in the tree it came from (its retrieval frequency given the
    /// parent). A node proposed by several retrieval trees keeps the largest such score.
    ///
    /// **Budget.** When the union holds more than `budget` nodes, the lowest-ranked nodes are
    /// cut. Ranking uses each node's effective score, the smallest score on its path (so a child
    /// never outranks its parent and every cut keeps the tree ancestor-closed): higher effective
    /// score first, then shallower first, then draft nodes before retrieval nodes, each tree's
    /// nodes in their own order. Without a cut, the result holds every path of both inputs.
    ///
    /// **Output.** Nodes come in ranking order (so its first `k` nodes are the best `k`-node
    /// subtree) and score their effective score; scores never increase from parent to child.
    /// `budget` counts speculative nodes only; the layout adds the pending token.
    ///
    /// - Throws: ``TokenTreeError`` when `budget` is negative or the union would exceed
    ///   ``TokenTree/maximumCount`` nodes.
    public mutating func fuse(draft: TokenTree, retrieval: TokenTree, budget: Int, into output: inout TokenTree) throws {
        try startFusion(with: draft)
        try addToFusion(retrieval)
        try finishFusion(budget: budget, into: &output)
    }

    /// Starts a fusion of several trees with `draft`; add retrieval trees (datastore, context)
    /// with ``addToFusion(_:)`` and finish with ``finishFusion(budget:into:)``. The result is
    /// that of ``fuse(draft:retrieval:budget:into:)`` generalised to several retrieval trees.
    public mutating func startFusion(with draft: TokenTree) throws {
        do {  // scoped, so that `merge` finds the storage uniquely referenced
            let storage = prepare()
            storage.unionCount = 0
            storage.clearTable(forAtLeast: draft.count)
        }
        try merge(draft, input: "draft")
    }

    /// Merges another tree into the fusion started by ``startFusion(with:)``.
    public mutating func addToFusion(_ retrieval: TokenTree) throws {
        try merge(retrieval, input: "retrieval")
    }

    /// Cuts the fused union to `budget` nodes and writes it to `output` (storage reused).
    public mutating func finishFusion(budget: Int, into output: inout TokenTree) throws {
        guard budget >= 0 else {
            output.removeAll()
            throw TokenTreeError(.invalidArgument, input: "budget", "budget is \(budget)")
        }
        let s = prepare()
        let n = s.unionCount
        s.effective.reserve(n)
        s.rankKeys.reserve(n)
        s.keptIndex.reserve(n)
        let parents = s.unionParents.base, depths = s.unionDepths.base, scores = s.unionScores.base
        let effective = s.effective.base, keys = s.rankKeys.base, keptIndex = s.keptIndex.base
        for u in 0..<n {
            let parent = Int(parents[u])
            let score = parent < 0 ? scores[u] : min(scores[u], effective[parent])
            effective[u] = score
            // Ascending keys rank: higher effective score (the bit pattern of a non-negative
            // float orders like its value; inverted for descending), then smaller depth, then
            // insertion order. Keys are unique, so the order is total and deterministic.
            keys[u] = UInt64(~score.bitPattern) << 32 | UInt64(depths[u]) << 16 | UInt64(u)
        }
        sortAscending(UnsafeMutableBufferPointer(start: keys, count: n))
        let kept = min(budget, n)
        let tokens = s.unionTokens.base, sources = s.unionSources.base
        output.withWritableNodes(capacity: kept) { out in
            for rank in 0..<kept {
                let u = Int(keys[rank] & 0xFFFF)
                let parent = Int(parents[u])
                keptIndex[u] = Int32(rank)
                out.tokens[rank] = tokens[u]
                // A parent ranks before its children (effective score at least theirs, smaller
                // depth), so it is already placed.
                out.parents[rank] = parent < 0 ? -1 : keptIndex[parent]
                out.depths[rank] = depths[u]
                out.scores[rank] = effective[u]
                out.sources[rank] = TokenSources(rawValue: sources[u])
            }
            return kept
        }
    }

    // MARK: - Union of paths

    /// Merges `tree` into the union by longest prefix match.
    private mutating func merge(_ tree: TokenTree, input: String) throws {
        let s = prepare()
        let n = tree.count
        guard s.unionCount + n <= TokenTree.maximumCount else {
            throw TokenTreeError(.tooManyNodes, input: input,
                                 "the fused tree would have \(s.unionCount + n) nodes")
        }
        s.reserveUnion(s.unionCount + n)
        s.growTable(forAtLeast: s.unionCount + n)
        s.mergeMap.reserve(n)
        let map = s.mergeMap.base
        let tokens = s.unionTokens.base, parents = s.unionParents.base, depths = s.unionDepths.base
        let scores = s.unionScores.base, sources = s.unionSources.base
        var count = s.unionCount
        tree.withNodes { tree in
            for i in 0..<n {
                let parent = Int(tree.parents[i])
                let unionParent: Int32 = parent < 0 ? -1 : map[parent]
                let relative = parent < 0 ? tree.scores[i] : Self.conditional(tree.scores[i], given: tree.scores[parent])
                let score = (unionParent < 0 ? 1 : scores[Int(unionParent)]) * relative
                let nodeSources = tree.sources[i].rawValue
                let token = tree.tokens[i]
                let key = UInt64(UInt32(unionParent + 1)) << 32 | UInt64(token)
                let (slot, found) = s.findSlot(key)
                if found {
                    let u = Int(s.tableValues.base[slot])
                    let newDraft = nodeSources & TokenSources.draft.rawValue != 0
                    let oldDraft = sources[u] & TokenSources.draft.rawValue != 0
                    if newDraft == oldDraft {
                        scores[u] = max(scores[u], score)
                    } else if newDraft {
                        scores[u] = score  // the draft's probability wins where it covers the path
                    }
                    sources[u] |= nodeSources
                    map[i] = Int32(u)
                } else {
                    s.tableKeys.base[slot] = key
                    s.tableValues.base[slot] = Int32(count)
                    tokens[count] = token
                    parents[count] = unionParent
                    depths[count] = unionParent < 0 ? 1 : depths[Int(unionParent)] + 1
                    scores[count] = score + 0
                    sources[count] = nodeSources
                    map[i] = Int32(count)
                    count += 1
                }
            }
        }
        s.unionCount = count
    }
}

extension TreeWorkspace.Storage {
    func reserveUnion(_ count: Int) {
        unionTokens.reserve(count)
        unionParents.reserve(count)
        unionDepths.reserve(count)
        unionScores.reserve(count)
        unionSources.reserve(count)
    }

    /// Empties the child table, sized for `count` nodes at most half full.
    func clearTable(forAtLeast count: Int) {
        let capacity = max(Self.tableCapacity(for: count), tableCapacity)
        setTableCapacity(capacity)
        tableKeys.fill(capacity, with: .max)
    }

    /// Grows the table when `count` nodes would fill more than half of it, re-inserting the
    /// union's nodes.
    func growTable(forAtLeast count: Int) {
        let capacity = Self.tableCapacity(for: count)
        guard tableCapacity < capacity else { return }
        setTableCapacity(capacity)
        tableKeys.fill(capacity, with: .max)
        for u in 0..<unionCount {
            let key = UInt64(UInt32(unionParents.base[u] + 1)) << 32 | UInt64(unionTokens.base[u])
            let (slot, _) = findSlot(key)
            tableKeys.base[slot] = key
            tableValues.base[slot] = Int32(u)
        }
    }

    private func setTableCapacity(_ capacity: Int) {
        tableCapacity = capacity
        tableShift = UInt64(64 - capacity.trailingZeroBitCount)
        tableKeys.reserve(capacity)
        tableValues.reserve(capacity)
    }

    private static func tableCapacity(for count: Int) -> Int {
        var capacity = 64
        while capacity < 2 * count { capacity <<= 1 }
        return capacity
    }

    /// The slot holding `key`, or the empty slot where it belongs (linear probing).
    @inline(__always)
    func findSlot(_ key: UInt64) -> (slot: Int, found: Bool) {
        let keys = tableKeys.base
        let mask = tableCapacity - 1
        // Fibonacci hashing: the multiply spreads (parent, token) over the top bits.
        var slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> tableShift)
        while true {
            let k = keys[slot]
            if k == key { return (slot, true) }
            if k == .max { return (slot, false) }
            slot = (slot + 1) & mask
        }
    }
}

extension TokenTree {
    /// Fuses a draft tree and a retrieval tree into at most `budget` nodes; see
    /// ``TreeWorkspace/fuse(draft:retrieval:budget:into:)``. Allocates; a decode loop uses a
    /// ``TreeWorkspace``.
    public static func fuse(draft: TokenTree, retrieval: TokenTree, budget: Int) throws -> TokenTree {
        var workspace = TreeWorkspace()
        var output = TokenTree()
        try workspace.fuse(draft: draft, retrieval: retrieval, budget: budget, into: &output)
        return output
    }
}

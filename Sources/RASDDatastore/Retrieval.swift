import RASDTrees

/// Scratch space for retrieval, reusable across queries so that steady-state queries allocate
/// nothing but their answer. Not thread-safe: use one per thread.
public struct RetrievalWorkspace: Sendable {
    var heap: [CandidateItem] = []
    /// Per-item ranges, `2 * shardCount` values each: node-local positions for unexpanded
    /// wavelet nodes, BWT rows for resolved trie nodes.
    var ranges: [Int] = []
    var intervals: [Int] = []
    var bestIntervals: [Int] = []
    var histograms: [Int] = []

    /// Creates an empty workspace.
    public init() {}
}

/// An entry of the best-first search: either a trie node whose count is known (resolved) or a
/// wavelet-tree node standing for all the trie nodes below it, whose count is an upper bound.
struct CandidateItem {
    /// Exact count (resolved) or the upper bound (a wavelet node's range size).
    var count: Int
    /// Trie depth of the node(s).
    var depth: Int32
    /// Wavelet node still to expand, or -1 when resolved.
    var treeNode: Int32
    /// Output index of the trie parent, -1 for the root.
    var parent: Int32
    /// The symbol (resolved) or the smallest symbol below the wavelet node.
    var symbol: UInt32
    /// Offset of this item's ranges in ``RetrievalWorkspace/ranges``.
    var rangeOffset: Int

    /// The ranking order of the answer: count descending, then depth, then parent's rank, then
    /// token. For a wavelet node this compares its best possible descendant, so popping the
    /// heap's first item never emits a node before a better one is known.
    @inline(__always)
    static func precedes(_ a: CandidateItem, _ b: CandidateItem) -> Bool {
        if a.count != b.count { return a.count > b.count }
        if a.depth != b.depth { return a.depth < b.depth }
        if a.parent != b.parent { return a.parent < b.parent }
        return a.symbol < b.symbol
    }
}

extension Datastore {
    /// The candidate continuations of `context` (see ``RetrievalParameters`` for the semantics).
    ///
    /// - Throws: ``DatastoreError`` `.tokenOutOfRange` for ids not below the vocabulary size,
    ///   `.invalidArgument` for unusable parameters, `.corrupt` when the index is damaged.
    public func retrieve(context: [UInt32], parameters: RetrievalParameters = RetrievalParameters()) throws -> CandidateTrie {
        var workspace = RetrievalWorkspace()
        var answer = CandidateTrie.empty
        try retrieve(context: context, parameters: parameters, workspace: &workspace, into: &answer)
        return answer
    }

    /// Retrieval reusing `workspace` and the storage of `answer`.
    public func retrieve(
        context: [UInt32], parameters: RetrievalParameters, workspace: inout RetrievalWorkspace, into answer: inout CandidateTrie
    ) throws {
        if let problem = parameters.validationError() {
            throw DatastoreError(.invalidArgument, path: path, problem)
        }
        let vocabulary = UInt32(header.vocabularySize)
        for (i, token) in context.enumerated() where token >= vocabulary {
            throw DatastoreError(
                .tokenOutOfRange, path: path,
                "context token \(i) is \(token), not below the vocabulary size \(vocabulary)")
        }
        answer.matchLength = 0
        answer.occurrences = 0
        answer.sampled = false
        answer.tokens.removeAll(keepingCapacity: true)
        answer.parents.removeAll(keepingCapacity: true)
        answer.counts.removeAll(keepingCapacity: true)

        let length = try longestSuffix(context, parameters: parameters, workspace: &workspace)
        guard length >= parameters.minMatch else { return }
        var occurrences = 0
        for s in shards.indices { occurrences += workspace.bestIntervals[2 * s + 1] - workspace.bestIntervals[2 * s] }
        answer.matchLength = length
        answer.occurrences = occurrences
        try continuations(parameters: parameters, occurrences: occurrences, workspace: &workspace, into: &answer)
    }

    // MARK: Longest suffix

    /// Binary search over suffix lengths: a suffix of the context occurs only if every shorter
    /// one does. Leaves the BWT rows of the winner in `workspace.bestIntervals`.
    private func longestSuffix(_ context: [UInt32], parameters: RetrievalParameters, workspace: inout RetrievalWorkspace) throws -> Int {
        let shardCount = shards.count
        if workspace.intervals.count != 2 * shardCount {
            workspace.intervals = [Int](repeating: 0, count: 2 * shardCount)
            workspace.bestIntervals = [Int](repeating: 0, count: 2 * shardCount)
        }
        var lo = 0
        var hi = min(parameters.maxMatch, context.count)
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if try occurs(context, length: mid, intervals: &workspace.intervals) {
                lo = mid
                swap(&workspace.intervals, &workspace.bestIntervals)
            } else {
                hi = mid - 1
            }
        }
        return lo
    }

    /// Whether the last `length` tokens of `context` occur in any shard; their rows per shard go to `intervals`.
    private func occurs(_ context: [UInt32], length: Int, intervals: inout [Int]) throws -> Bool {
        var found = false
        for (s, shard) in shards.enumerated() {
            var l = 0, r = shard.rows
            for i in (context.count - length)..<context.count {
                let symbol = Alphabet.symbol(token: context[i])
                (l, r) = try extend(shard, symbol: symbol, l, r)
                if l >= r { break }
            }
            intervals[2 * s] = l
            intervals[2 * s + 1] = max(l, r)
            if l < r { found = true }
        }
        return found
    }

    /// One backward-search step: the rows of `symbol` followed by the pattern of rows `l..<r`
    /// in the reversed text, i.e. the pattern extended on the right by `symbol`.
    @inline(__always)
    private func extend(_ shard: Shard, symbol: Int, _ l: Int, _ r: Int) throws -> (Int, Int) {
        var a = l, b = r
        var bits = codeNibbles[symbol]
        var node = 0
        let length = Int(codeLengths[symbol])
        for depth in 0..<length {
            let x = Int(bits & 15)
            bits >>= 4
            a = shard.rank(node: node, depth: depth, nibble: x, a)
            b = shard.rank(node: node, depth: depth, nibble: x, b)
            if a < 0 || b < 0 { throw corrupted() }
            if a >= b { return (0, 0) }
            node = Int(code.children[node &* 16 &+ x])
        }
        let base = Int(shard.firstRow[symbol])
        guard base + b <= shard.rows else { throw corrupted() }
        return (base + a, base + b)
    }

    private func corrupted() -> DatastoreError {
        DatastoreError(.corrupt, path: path, "the index leads outside itself; run `rasd-index verify`")
    }

    // MARK: Continuations

    /// Best-first search for the most frequent continuation prefixes.
    ///
    /// The rows of a matched pattern are sorted by what follows it, and the wavelet tree splits
    /// any row range by the next token: a wavelet node's range size bounds the count of every
    /// continuation below it. Popping items in ranking order therefore emits trie nodes in their
    /// final order, and only the part of the tree that can reach the top `maxNodes` is expanded —
    /// the cost follows the size of the answer, not the number of occurrences.
    private func continuations(
        parameters: RetrievalParameters, occurrences: Int, workspace: inout RetrievalWorkspace, into answer: inout CandidateTrie
    ) throws {
        guard parameters.maxNodes > 0 else { return }
        let shardCount = shards.count
        workspace.heap.removeAll(keepingCapacity: true)
        workspace.ranges.removeAll(keepingCapacity: true)
        workspace.ranges.append(contentsOf: workspace.bestIntervals)
        push(
            CandidateItem(count: occurrences, depth: 1, treeNode: 0, parent: -1, symbol: code.minSymbol[0], rangeOffset: 0),
            &workspace.heap)

        if workspace.histograms.count != 48 { workspace.histograms = [Int](repeating: 0, count: 48) }
        while answer.tokens.count < parameters.maxNodes, let item = pop(&workspace.heap) {
            if item.treeNode < 0 {
                let index = Int32(answer.tokens.count)
                answer.tokens.append(Alphabet.token(symbol: Int(item.symbol)))
                answer.parents.append(item.parent)
                answer.counts.append(UInt32(clamping: item.count))
                if Int(item.depth) < parameters.continuationLength {
                    push(
                        CandidateItem(
                            count: item.count, depth: item.depth + 1, treeNode: 0, parent: index, symbol: code.minSymbol[0],
                            rangeOffset: item.rangeOffset),
                        &workspace.heap)
                }
                continue
            }
            try expand(item, shardCount: shardCount, workspace: &workspace)
        }
    }

    /// Splits every shard's range of a wavelet node by the next nibble and queues the children.
    @inline(__always)
    private func expand(_ item: CandidateItem, shardCount: Int, workspace: inout RetrievalWorkspace) throws {
        let node = Int(item.treeNode)
        let depth = Int(code.depth[node])
        // Child ranges: 16 slots of `2 * shardCount` values.
        let childrenOffset = workspace.ranges.count
        workspace.ranges.append(contentsOf: repeatElement(0, count: 32 * shardCount))
        try workspace.histograms.withUnsafeMutableBufferPointer { scratch in
            let hA = scratch.baseAddress.unsafelyUnwrapped, hB = hA + 16, totals = hA + 32
            for x in 0..<16 { totals[x] = 0 }
            for s in 0..<shardCount {
                let a = workspace.ranges[item.rangeOffset + 2 * s]
                let b = workspace.ranges[item.rangeOffset + 2 * s + 1]
                if a >= b { continue }
                let shard = shards[s]
                let level = shard.levels[depth]
                let start = Int(shard.levelStart[node])
                guard b <= Int(shard.nodeLength[node]), start + b <= level.count else { throw corrupted() }
                level.histogram(start + a, into: hA)
                if (start + a) / NibbleSequence.blockPositions == (start + b) / NibbleSequence.blockPositions {
                    // Same block: count only the nibbles between the two ends.
                    level.histogramInBlock(from: start + a, to: start + b, into: hB)
                    for x in 0..<16 { hB[x] += hA[x] }
                } else {
                    level.histogram(start + b, into: hB)
                }
                for x in 0..<16 {
                    let count = hB[x] - hA[x]
                    if count <= 0 { continue }
                    let offset = Int(shard.rankAtStart[node &* 16 &+ x])
                    let lo = hA[x] - offset
                    guard lo >= 0 else { throw corrupted() }
                    totals[x] += count
                    workspace.ranges[childrenOffset + x * 2 * shardCount + 2 * s] = lo
                    workspace.ranges[childrenOffset + x * 2 * shardCount + 2 * s + 1] = lo + count
                }
            }
            for x in 0..<16 where totals[x] > 0 {
                let child = code.children[node * 16 + x]
                let offset = childrenOffset + x * 2 * shardCount
                if child >= 0 {
                    push(
                        CandidateItem(
                            count: totals[x], depth: item.depth, treeNode: child, parent: item.parent,
                            symbol: code.minSymbol[Int(child)], rangeOffset: offset),
                        &workspace.heap)
                } else if child != SymbolCode.empty {
                    let symbol = Int(~child)
                    // Document and text ends stop a continuation.
                    if symbol < Alphabet.firstToken { continue }
                    // Local positions in a leaf are ranks of the symbol: turn them into rows.
                    for s in 0..<shardCount {
                        let base = Int(shards[s].firstRow[symbol])
                        workspace.ranges[offset + 2 * s] += base
                        workspace.ranges[offset + 2 * s + 1] += base
                    }
                    push(
                        CandidateItem(
                            count: totals[x], depth: item.depth, treeNode: -1, parent: item.parent, symbol: UInt32(symbol),
                            rangeOffset: offset),
                        &workspace.heap)
                }
            }
        }
    }

    @inline(__always)
    private func push(_ item: CandidateItem, _ heap: inout [CandidateItem]) {
        heap.append(item)
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) >> 1
            guard CandidateItem.precedes(heap[i], heap[p]) else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    @inline(__always)
    private func pop(_ heap: inout [CandidateItem]) -> CandidateItem? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                var m = l
                if l + 1 < n && CandidateItem.precedes(heap[l + 1], heap[l]) { m = l + 1 }
                guard CandidateItem.precedes(heap[m], heap[i]) else { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

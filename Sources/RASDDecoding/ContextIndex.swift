import RASDTrees

/// Prompt-lookup retrieval: an incremental index of the decoding context (the prompt and every
/// token generated so far) that answers with the same semantics and shape as datastore retrieval.
///
/// Appending a token records, for every n-gram length from `minMatch` to `maxMatch`, a hash of the
/// n-gram ending at it, so a query never scans the context: it looks up the context's suffixes from
/// the longest down, and the cost of a step does not grow with the length of the prompt. The
/// context's own final suffix is not an occurrence (it has no continuation). When the matched
/// suffix occurs more than `occurrenceCap` times, continuations are gathered from an even sample of
/// its occurrences (most recent included) and the answer says `sampled`; `occurrences` stays exact.
public struct ContextIndex: Sendable {
    /// The context, oldest token first.
    public private(set) var tokens: [UInt32] = []
    /// Retrieval parameters the index was made for.
    public let parameters: RetrievalParameters
    /// Most occurrences whose continuations are counted.
    public let occurrenceCap: Int

    /// `ends[n - minMatch][hash of an n-gram]`: end positions (exclusive) of its occurrences, ascending.
    private var ends: [[UInt64: [Int32]]]
    private var scratch = ContinuationCounter()

    /// Creates an empty index.
    public init(parameters: RetrievalParameters = RetrievalParameters(), occurrenceCap: Int = 512) {
        self.parameters = parameters
        self.occurrenceCap = max(1, occurrenceCap)
        ends = Array(repeating: [:], count: max(0, parameters.maxMatch - parameters.minMatch + 1))
    }

    /// Appends one token of context.
    public mutating func append(_ token: UInt32) {
        tokens.append(token)
        let end = tokens.count
        var hash = Self.seed
        var n = 0
        var i = end - 1
        while i >= 0 && n < parameters.maxMatch {
            // The hash of the n-gram ending here, read backwards one token at a time.
            hash = Self.mix(hash, tokens[i])
            n += 1
            if n >= parameters.minMatch { ends[n - parameters.minMatch][hash, default: []].append(Int32(end)) }
            i -= 1
        }
    }

    /// Appends tokens of context.
    public mutating func append(contentsOf newTokens: some Sequence<UInt32>) {
        for t in newTokens { append(t) }
    }

    /// Forgets everything after the first `length` tokens (for example after a rollback).
    public mutating func truncate(to length: Int) {
        guard length < tokens.count else { return }
        let kept = tokens.prefix(length)
        tokens = []
        ends = Array(repeating: [:], count: ends.count)
        append(contentsOf: kept)
    }

    /// The candidate continuations of the current context.
    public mutating func retrieve() -> CandidateTrie {
        var answer = CandidateTrie.empty
        retrieve(into: &answer)
        return answer
    }

    /// The candidate continuations of the current context, reusing `answer`'s storage.
    public mutating func retrieve(into answer: inout CandidateTrie) {
        answer.matchLength = 0
        answer.occurrences = 0
        answer.sampled = false
        answer.tokens.removeAll(keepingCapacity: true)
        answer.parents.removeAll(keepingCapacity: true)
        answer.counts.removeAll(keepingCapacity: true)
        let n = tokens.count
        guard n > parameters.minMatch else { return }

        // Hashes of the context's suffixes, shortest first.
        var suffixHashes: [UInt64] = []
        var hash = Self.seed
        for length in 1...min(parameters.maxMatch, n - 1) {
            hash = Self.mix(hash, tokens[n - length])
            if length >= parameters.minMatch { suffixHashes.append(hash) }
        }
        for length in stride(from: min(parameters.maxMatch, n - 1), through: parameters.minMatch, by: -1) {
            guard let list = ends[length - parameters.minMatch][suffixHashes[length - parameters.minMatch]] else { continue }
            // Every entry but the context's own end is an earlier occurrence.
            let count = list.last == Int32(n) ? list.count - 1 : list.count
            guard count > 0 else { continue }
            answer.matchLength = length
            answer.occurrences = count
            answer.sampled = count > occurrenceCap
            scratch.reset()
            let take = min(count, occurrenceCap)
            for k in 0..<take {
                // An even sample that always includes the most recent occurrence.
                let index = count - 1 - (k * count) / take
                let end = Int(list[index])
                scratch.add(tokens[end..<min(n, end + parameters.continuationLength)])
            }
            scratch.select(maxNodes: parameters.maxNodes, into: &answer)
            return
        }
    }

    private static let seed: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always)
    private static func mix(_ h: UInt64, _ token: UInt32) -> UInt64 {
        // 64-bit multiply-xorshift mixing; distinct n-grams collide with probability ~2^-64.
        var x = (h ^ UInt64(token)) &* 0xBF58_476D_1CE4_E5B9
        x ^= x >> 31
        return x &* 0x94D0_49BB_1331_11EB ^ (x >> 29)
    }
}

/// Counts continuation prefixes in a small trie and selects the top nodes in retrieval order
/// (count descending, depth ascending, parent's output position ascending, token ascending).
struct ContinuationCounter: Sendable {
    private var token: [UInt32] = []
    private var count: [UInt32] = []
    private var firstChild: [Int32] = []
    private var nextSibling: [Int32] = []
    private var rootFirst: Int32 = -1
    private var heap: [(count: UInt32, depth: Int32, parent: Int32, token: UInt32, node: Int32)] = []

    mutating func reset() {
        token.removeAll(keepingCapacity: true)
        count.removeAll(keepingCapacity: true)
        firstChild.removeAll(keepingCapacity: true)
        nextSibling.removeAll(keepingCapacity: true)
        rootFirst = -1
    }

    /// Adds one continuation: every prefix's count grows by one.
    mutating func add(_ continuation: ArraySlice<UInt32>) {
        var parent: Int32 = -1
        for t in continuation {
            var child = parent < 0 ? rootFirst : firstChild[Int(parent)]
            while child >= 0 && token[Int(child)] != t { child = nextSibling[Int(child)] }
            if child < 0 {
                child = Int32(token.count)
                token.append(t)
                count.append(0)
                firstChild.append(-1)
                if parent < 0 {
                    nextSibling.append(rootFirst)
                    rootFirst = child
                } else {
                    nextSibling.append(firstChild[Int(parent)])
                    firstChild[Int(parent)] = child
                }
            }
            count[Int(child)] += 1
            parent = child
        }
    }

    /// Best-first selection of at most `maxNodes` nodes into `answer`'s arrays.
    mutating func select(maxNodes: Int, into answer: inout CandidateTrie) {
        heap.removeAll(keepingCapacity: true)
        func precedes(_ a: (count: UInt32, depth: Int32, parent: Int32, token: UInt32, node: Int32),
                      _ b: (count: UInt32, depth: Int32, parent: Int32, token: UInt32, node: Int32)) -> Bool {
            if a.count != b.count { return a.count > b.count }
            if a.depth != b.depth { return a.depth < b.depth }
            if a.parent != b.parent { return a.parent < b.parent }
            return a.token < b.token
        }
        func push(_ x: (count: UInt32, depth: Int32, parent: Int32, token: UInt32, node: Int32)) {
            heap.append(x)
            var i = heap.count - 1
            while i > 0 {
                let p = (i - 1) / 2
                guard precedes(heap[i], heap[p]) else { break }
                heap.swapAt(i, p)
                i = p
            }
        }
        func pop() -> (count: UInt32, depth: Int32, parent: Int32, token: UInt32, node: Int32)? {
            guard let top = heap.first else { return nil }
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                while true {
                    let l = 2 * i + 1
                    if l >= heap.count { break }
                    var m = l
                    if l + 1 < heap.count && precedes(heap[l + 1], heap[l]) { m = l + 1 }
                    guard precedes(heap[m], heap[i]) else { break }
                    heap.swapAt(i, m)
                    i = m
                }
            }
            return top
        }
        var child = rootFirst
        while child >= 0 {
            push((count[Int(child)], 1, -1, token[Int(child)], child))
            child = nextSibling[Int(child)]
        }
        while answer.tokens.count < maxNodes, let best = pop() {
            let index = Int32(answer.tokens.count)
            answer.tokens.append(best.token)
            answer.parents.append(best.parent)
            answer.counts.append(best.count)
            var c = firstChild[Int(best.node)]
            while c >= 0 {
                push((count[Int(c)], best.depth + 1, index, token[Int(c)], c))
                c = nextSibling[Int(c)]
            }
        }
    }
}

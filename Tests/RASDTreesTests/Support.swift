import PropertyBased
import RASDTrees

// Random inputs and brute-force references for the property tests. Vocabularies are tiny so
// that paths collide often (merges, matches, duplicate tokens on different branches).

/// A draft tree: random shape, conditional probabilities in (0, 1].
func randomDraft(_ rng: inout some RandomNumberGenerator, vocabulary: Int, maxNodes: Int) -> TokenTree {
    let n = Int.random(in: 0...maxNodes, using: &rng)
    var tokens: [UInt32] = [], parents: [Int32] = [], probabilities: [Float] = []
    for i in 0..<n {
        let parent = i == 0 || Bool.random(using: &rng) && Int.random(in: 0..<4, using: &rng) == 0
            ? -1 : Int32.random(in: -1..<Int32(i), using: &rng)
        // Siblings get distinct tokens unless the vocabulary is exhausted (then duplicates stay,
        // which fusion must merge).
        let used = Set(tokens.indices.filter { parents[$0] == parent }.map { tokens[$0] })
        let free = (0..<UInt32(vocabulary)).filter { !used.contains($0) }
        tokens.append(free.randomElement(using: &rng) ?? UInt32.random(in: 0..<UInt32(vocabulary), using: &rng))
        parents.append(parent)
        probabilities.append([Float(1), 0.5, 0.25, Float.random(in: 0.01...1, using: &rng)].randomElement(using: &rng) ?? 1)
    }
    return (try? TokenTree(draftTokens: tokens, parents: parents, probabilities: probabilities)) ?? TokenTree()
}

/// A retrieval trie as the datastore builds it: count every prefix of random continuations,
/// rank by count desc, depth asc, parent's rank asc, token asc, keep the first `maxNodes`.
func randomTrie(_ rng: inout some RandomNumberGenerator, vocabulary: Int, maxNodes: Int) -> CandidateTrie {
    let occurrences = Int.random(in: 0...30, using: &rng)
    var counts: [[UInt32]: UInt32] = [:]
    for _ in 0..<occurrences {
        let length = Int.random(in: 1...5, using: &rng)
        var path: [UInt32] = []
        for _ in 0..<length {
            path.append(UInt32.random(in: 0..<UInt32(vocabulary), using: &rng))
            counts[path, default: 0] += 1
        }
    }
    func precedes(_ a: [UInt32], _ b: [UInt32]) -> Bool {
        if counts[a] != counts[b] { return counts[a]! > counts[b]! }
        if a.count != b.count { return a.count < b.count }
        if a.count > 1 && a.dropLast() != b.dropLast() { return precedes(Array(a.dropLast()), Array(b.dropLast())) }
        return a.last! < b.last!
    }
    let ranked = counts.keys.sorted(by: precedes).prefix(maxNodes)
    var index: [[UInt32]: Int32] = [:]
    for (i, path) in ranked.enumerated() { index[path] = Int32(i) }
    return CandidateTrie(
        matchLength: 3, occurrences: occurrences,
        tokens: ranked.map { $0.last! },
        parents: ranked.map { $0.count == 1 ? -1 : index[Array($0.dropLast())]! },
        counts: ranked.map { counts[$0]! })
}

func randomRetrieval(_ rng: inout some RandomNumberGenerator, vocabulary: Int, maxNodes: Int,
                     source: TokenSources = .datastore) -> TokenTree {
    (try? TokenTree(retrieval: randomTrie(&rng, vocabulary: vocabulary, maxNodes: maxNodes), source: source)) ?? TokenTree()
}

/// A probability row over `vocabulary` tokens with many ties and some zeros.
func randomDistribution(_ rng: inout some RandomNumberGenerator, vocabulary: Int) -> [Float] {
    let levels: [Float] = [0, 0, 0.05, 0.1, 0.1, 0.2, 0.3]
    var row = (0..<vocabulary).map { _ in levels.randomElement(using: &rng)! }
    let sum = row.reduce(0, +)
    if sum > 0 { row = row.map { $0 / sum } }
    return row
}

/// The path of every node of `tree`.
func paths(_ tree: TokenTree) -> [[UInt32]] {
    tree.tokens.indices.map { tree.path(to: $0) }
}

/// Checks the structural invariants every tree must hold; returns a failure or nil.
func structuralProblem(_ tree: TokenTree) -> String? {
    for i in tree.tokens.indices {
        let p = Int(tree.parents[i])
        if p >= i || p < -1 { return "node \(i) has parent \(p)" }
        if tree.depths[i] != (p < 0 ? 1 : tree.depths[p] + 1) { return "node \(i) has depth \(tree.depths[i])" }
        if !(tree.scores[i] >= 0) || !tree.scores[i].isFinite { return "node \(i) scores \(tree.scores[i])" }
    }
    return nil
}

/// Brute-force top-k: sort by probability desc, token asc; drop non-positive entries.
func bruteTopK(_ row: [Float], _ k: Int) -> [UInt32] {
    row.indices.filter { row[$0] > 0 }
        .sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
        .prefix(k).map { UInt32($0) }
}

/// Brute-force fusion over paths: the union in insertion order with the documented score rules,
/// then the documented ranking. Returns (path, score, sources) in output order.
func bruteFuse(_ trees: [TokenTree], budget: Int) -> [(path: [UInt32], score: Float, sources: TokenSources)] {
    var order: [[UInt32]] = []
    var score: [[UInt32]: Float] = [:]
    var sources: [[UInt32]: TokenSources] = [:]
    for tree in trees {
        for i in tree.tokens.indices {
            let path = tree.path(to: i)
            let p = Int(tree.parents[i])
            let relative = p < 0 ? tree.scores[i] : (tree.scores[p] > 0 ? min(1, tree.scores[i] / tree.scores[p]) : 0)
            let contribution = (path.count == 1 ? 1 : score[Array(path.dropLast())]!) * relative
            let newSources = tree.sources[i]
            if let old = score[path] {
                let oldDraft = sources[path]!.contains(.draft), newDraft = newSources.contains(.draft)
                if oldDraft == newDraft { score[path] = max(old, contribution) }
                else if newDraft { score[path] = contribution }
                sources[path]!.formUnion(newSources)
            } else {
                order.append(path)
                score[path] = contribution
                sources[path] = newSources
            }
        }
    }
    var effective: [[UInt32]: Float] = [:]
    for path in order {  // parents come first in insertion order
        effective[path] = path.count == 1 ? score[path]! : min(score[path]!, effective[Array(path.dropLast())]!)
    }
    let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
    let ranked = order.sorted { a, b in
        if effective[a]! != effective[b]! { return effective[a]! > effective[b]! }
        if a.count != b.count { return a.count < b.count }
        return position[a]! < position[b]!
    }
    return ranked.prefix(budget).map { ($0, effective[$0]!, sources[$0]!) }
}

/// A property-test generator from a closure over a random number generator.
func generator<T>(_ make: @escaping @Sendable (inout Xoshiro256) -> T) -> Generator<T, Shrink.None<T>> {
    Generator { rng in
        var seeded = Xoshiro256(seed: rng.next())
        return make(&seeded)
    }
}

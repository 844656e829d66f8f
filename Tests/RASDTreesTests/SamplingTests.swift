import Foundation
import Testing
import RASDTrees

/// Statistical tests of sampling acceptance: decoding with speculative trees must emit tokens
/// distributed exactly as sampling the target one token at a time.
///
/// Method: a 4-token target whose next-token distribution depends on the whole context (some
/// rows have zeros); a decode loop that builds a fixed tree for the context, verifies it with
/// `acceptSampling` and appends the emitted tokens, until 3 tokens are out. 20,000 sequences
/// per tree shape (fixed seeds), Pearson's chi-square over the 64 sequences (cells expected
/// below 5 pooled), significance 0.001: a shape fails when p < 0.001. The same method must
/// reject a sampler with a classic bug (no renormalisation after a rejection), which shows the
/// test has the power to see such errors.
@Suite struct SamplingAcceptanceTests {
    static let vocabulary = 4
    static let length = 3
    static let draws = 20_000
    static let significance = 0.001

    static let rows: [[Float]] = [
        [0.5, 0.3, 0.2, 0.0],
        [0.1, 0.1, 0.4, 0.4],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.7, 0.0, 0.3],
        [0.05, 0.15, 0.6, 0.2],
    ]

    /// The target's distribution after `context`.
    static func target(_ context: [UInt32]) -> [Float] {
        var h: UInt64 = 0x9E37
        for t in context { h = (h ^ UInt64(t + 1)) &* 0x100_0000_01B3 }
        return rows[Int((h >> 17) % UInt64(rows.count))]
    }

    /// Draft {0, 0-2, 0-2-1, 3} fused with retrieval {1, 1-2, 1-2-3, 0-3}: token 2 is proposed
    /// below 0 by the draft and below 1 by retrieval, token 3 at the root by the draft and below
    /// 0 by retrieval.
    static let fusedShape: TokenTree = {
        let draft = try? TokenTree(draftTokens: [0, 2, 1, 3], parents: [-1, 0, 1, -1], probabilities: [0.6, 0.5, 0.5, 0.3])
        let retrieval = try? TokenTree(retrieval: CandidateTrie(
            matchLength: 2, occurrences: 10, tokens: [1, 2, 3, 0, 3], parents: [-1, 0, 1, -1, 3], counts: [6, 5, 4, 3, 3]))
        return (try? TokenTree.fuse(draft: draft ?? TokenTree(), retrieval: retrieval ?? TokenTree(), budget: 64)) ?? TokenTree()
    }()

    enum Shape: CaseIterable {
        case fused, fusedWithoutPendingToken, contextDependent, chain, wideRoot
    }

    static func tree(_ shape: Shape, context: [UInt32]) -> TokenTree {
        func tree(_ tokens: [UInt32], _ parents: [Int32]) -> TokenTree {
            (try? TokenTree(tokens: tokens, parents: parents, scores: tokens.map { _ in 1 }, source: .draft)) ?? TokenTree()
        }
        switch shape {
        case .fused, .fusedWithoutPendingToken: return fusedShape
        case .contextDependent:
            let a = UInt32((context.last ?? 0) + 1) % 4, b = (a + 2) % 4
            return tree([a, b, b, a], [-1, -1, 0, 1])
        case .chain: return tree([1, 2, 2, 0], [-1, 0, 1, 2])
        case .wideRoot: return tree([3, 0, 1, 2, 2, 1], [-1, -1, -1, -1, 0, 1])
        }
    }

    /// A sampler with a classic bug: it accepts a proposal with the original probability p(x)
    /// instead of the renormalised one. Used to check the test's power.
    static func naiveAccept(_ layout: TreeLayout, _ rows: [Float], _ rng: inout Xoshiro256) -> [UInt32] {
        var emitted: [UInt32] = []
        var row = 0
        while true {
            let p = Array(rows[(row * vocabulary)..<((row + 1) * vocabulary)])
            var residual = p
            var next: Int?
            for child in layout.children(of: row) {
                let token = Int(layout.tokens[child])
                if Double.random(in: 0..<1, using: &rng) < Double(p[token]) { next = child; break }
                residual[token] = 0
            }
            if let next {
                emitted.append(layout.tokens[next])
                row = next
                continue
            }
            let total = residual.reduce(0, +)
            var chosen = residual.lastIndex { $0 > 0 } ?? p.firstIndex { $0 > 0 } ?? 0
            if total > 0 {
                var u = Float.random(in: 0..<total, using: &rng)
                for token in 0..<vocabulary where residual[token] > 0 {
                    u -= residual[token]
                    if u < 0 { chosen = token; break }
                }
            }
            emitted.append(UInt32(chosen))
            return emitted
        }
    }

    /// Counts of the first `length` emitted tokens over `draws` decodes.
    static func sampleCounts(_ shape: Shape, seed: UInt64, naive: Bool = false) throws -> [[UInt32]: Int] {
        var rng = Xoshiro256(seed: seed)
        var counts: [[UInt32]: Int] = [:]
        for _ in 0..<draws {
            var context: [UInt32] = []
            while context.count < length {
                let tree = tree(shape, context: context)
                let pending = shape != .fusedWithoutPendingToken
                let layout = tree.layout(pendingToken: pending ? context.last ?? 0 : nil)
                var rows: [Float] = []
                for row in 0..<layout.count {
                    var path: [UInt32] = []
                    var r = row
                    while r >= (pending ? 1 : 0) { path.append(layout.tokens[r]); r = Int(layout.parents[r]) }
                    rows += target(context + path.reversed())
                }
                if naive {
                    context += naiveAccept(layout, rows, &rng)
                } else if pending {
                    context += try TreeVerification.acceptSampling(tree: layout, targetProbabilities: rows, rng: &rng).emittedTokens
                } else {
                    context += try TreeVerification.acceptSampling(
                        tree: layout, targetProbabilities: rows, rootProbabilities: target(context), rng: &rng).emittedTokens
                }
            }
            counts[Array(context.prefix(length)), default: 0] += 1
        }
        return counts
    }

    /// The p-value of Pearson's chi-square statistic of `counts` against the target's exact
    /// sequence probabilities.
    static func pValue(_ counts: [[UInt32]: Int]) -> Double {
        var sequences: [[UInt32]] = [[]]
        for _ in 0..<length { sequences = sequences.flatMap { s in (0..<UInt32(vocabulary)).map { s + [$0] } } }
        var statistic = 0.0, cells = 0, pooledExpected = 0.0, pooledObserved = 0.0
        for sequence in sequences {
            var probability = 1.0
            for i in sequence.indices { probability *= Double(target(Array(sequence.prefix(i)))[Int(sequence[i])]) }
            let expected = probability * Double(draws)
            let observed = Double(counts[sequence] ?? 0)
            if expected == 0 {
                if observed > 0 { return 0 }  // an impossible sequence was emitted
            } else if expected < 5 {
                pooledExpected += expected
                pooledObserved += observed
            } else {
                statistic += (observed - expected) * (observed - expected) / expected
                cells += 1
            }
        }
        if pooledExpected > 0 {
            statistic += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / pooledExpected
            cells += 1
        }
        return chiSquareSurvival(statistic, degreesOfFreedom: cells - 1)
    }

    @Test(arguments: Shape.allCases)
    func reproducesTheTargetDistribution(_ shape: Shape) throws {
        let p = Self.pValue(try Self.sampleCounts(shape, seed: 2025))
        #expect(p > Self.significance, "shape \(shape): chi-square p = \(p)")
    }

    @Test func detectsASamplerThatDoesNotRenormalise() throws {
        let p = Self.pValue(try Self.sampleCounts(.wideRoot, seed: 2025, naive: true))
        #expect(p < 1e-6, "the test lacks power: naive sampler p = \(p)")
    }

    @Test func chiSquareSurvivalMatchesTables() {
        // Upper 5% and 0.1% points of the chi-square distribution (standard tables).
        #expect(abs(chiSquareSurvival(18.307, degreesOfFreedom: 10) - 0.05) < 1e-4)
        #expect(abs(chiSquareSurvival(3.841, degreesOfFreedom: 1) - 0.05) < 1e-4)
        #expect(abs(chiSquareSurvival(86.661, degreesOfFreedom: 50) - 0.001) < 1e-5)
    }

    @Test func equalSeedsGiveEqualResults() throws {
        let layout = Self.fusedShape.layout(pendingToken: 0)
        var rows: [Float] = []
        for _ in 0..<layout.count { rows += [0.3, 0.3, 0.2, 0.2] }
        for seed in 0..<50 as Range<UInt64> {
            var a = Xoshiro256(seed: seed), b = Xoshiro256(seed: seed)
            let first = try TreeVerification.acceptSampling(tree: layout, targetProbabilities: rows, rng: &a)
            var second = AcceptedPath()
            try rows.withUnsafeBufferPointer {
                try TreeVerification.acceptSampling(tree: layout, targetProbabilities: $0, rng: &b, into: &second)
            }
            #expect(first == second)
            #expect(a == b)
        }
    }
}

/// P(X >= x) for X chi-square distributed with `k` degrees of freedom: the regularised upper
/// incomplete gamma function Q(k/2, x/2) (series below a + 1, Lentz's continued fraction above).
func chiSquareSurvival(_ x: Double, degreesOfFreedom k: Int) -> Double {
    let a = Double(k) / 2, z = x / 2
    if z <= 0 { return 1 }
    let logPrefix = -z + a * log(z) - lgamma(a)
    if z < a + 1 {
        var term = 1 / a, sum = term, n = a
        while abs(term) > abs(sum) * 1e-15 {
            n += 1
            term *= z / n
            sum += term
        }
        return 1 - sum * exp(logPrefix)
    }
    let tiny = 1e-300
    var b = z + 1 - a, c = 1 / tiny, d = 1 / b, h = d
    for i in 1...1000 {
        let an = -Double(i) * (Double(i) - a)
        b += 2
        d = an * d + b
        if abs(d) < tiny { d = tiny }
        c = b + an / c
        if abs(c) < tiny { c = tiny }
        d = 1 / d
        let delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15 { break }
    }
    return exp(logPrefix) * h
}

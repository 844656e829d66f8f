import RASDDecoding
import RASDTrees
import Testing

/// Prompt lookup computed by scanning: earlier occurrences of the context's longest suffix
/// (the final one excluded), every continuation prefix counted, greedy selection in the
/// documented order.
private func bruteForce(_ context: [UInt32], _ p: RetrievalParameters) -> CandidateTrie {
    let n = context.count
    guard n > p.minMatch else { return .empty }
    for length in stride(from: min(p.maxMatch, n - 1), through: p.minMatch, by: -1) {
        let suffix = Array(context[(n - length)...])
        let ends = (length..<n).filter { Array(context[($0 - length)..<$0]) == suffix }
        if ends.isEmpty { continue }
        var counts: [[UInt32]: Int] = [:]
        for e in ends {
            let stop = min(n, e + p.continuationLength)
            if e < stop { for j in (e + 1)...stop { counts[Array(context[e..<j]), default: 0] += 1 } }
        }
        var out = CandidateTrie(matchLength: length, occurrences: ends.count, tokens: [], parents: [], counts: [])
        var index: [[UInt32]: Int32] = [:]
        while out.count < p.maxNodes {
            var best: ([UInt32], Int, Int32)?
            for (path, c) in counts where index[path] == nil {
                let parent: Int32
                if path.count == 1 { parent = -1 } else if let q = index[Array(path.dropLast())] { parent = q } else { continue }
                if let b = best {
                    let better = c != b.1 ? c > b.1 : path.count != b.0.count ? path.count < b.0.count : parent != b.2 ? parent < b.2 : path.last! < b.0.last!
                    if !better { continue }
                }
                best = (path, c, parent)
            }
            guard let (path, c, parent) = best else { break }
            index[path] = Int32(out.count)
            out.tokens.append(path.last!)
            out.parents.append(parent)
            out.counts.append(UInt32(c))
        }
        return out
    }
    return .empty
}

private struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        return z ^ (z >> 31)
    }
}

@Suite struct ContextIndexTests {
    @Test(arguments: [RetrievalParameters(), RetrievalParameters(maxMatch: 4, minMatch: 1, continuationLength: 3, maxNodes: 7)])
    func everyStepEqualsTheScan(parameters: RetrievalParameters) {
        var rng = Generator(state: 7)
        // Repetitive text: phrases repeat, so matches are long and frequent.
        let phrases: [[UInt32]] = (0..<6).map { _ in (0..<Int(rng.next() % 6 + 2)).map { _ in UInt32(rng.next() % 9) } }
        var context: [UInt32] = []
        while context.count < 600 {
            if rng.next() % 4 == 0 { context.append(UInt32(rng.next() % 9)) } else { context += phrases[Int(rng.next() % 6)] }
        }
        var index = ContextIndex(parameters: parameters, occurrenceCap: 10_000)
        for (i, t) in context.enumerated() {
            index.append(t)
            if i % 7 == 0 || i > 560 {
                #expect(index.retrieve() == bruteForce(Array(context[...i]), parameters), "after \(i + 1) tokens")
            }
        }
    }

    @Test func manyOccurrencesAreSampledEvenlyAndSaySo() {
        var index = ContextIndex(occurrenceCap: 8)
        let unit: [UInt32] = [5, 6, 7]
        for k in 0..<100 { index.append(contentsOf: unit); index.append(UInt32(100 + k)) }
        index.append(contentsOf: unit)
        let a = index.retrieve()
        // "5 6 7" (and longer suffixes ending in it) occurred 100 times before; counts cover 8.
        #expect(a.matchLength == 4 || a.matchLength == 3)
        #expect(a.sampled)
        #expect(a.counts.first.map { $0 <= 8 } == true)
        #expect(a.occurrences > 8)
    }

    @Test func truncationForgetsTheTail() {
        var index = ContextIndex()
        index.append(contentsOf: [1, 2, 3, 4, 1, 2, 3, 9, 1, 2])
        let before = index.retrieve()
        index.append(contentsOf: [3, 4, 5])
        index.truncate(to: 10)
        #expect(index.retrieve() == before)
        #expect(index.tokens == [1, 2, 3, 4, 1, 2, 3, 9, 1, 2])
        var empty = ContextIndex()
        #expect(empty.retrieve() == .empty)
        empty.append(5)
        #expect(empty.retrieve() == .empty)
    }
}

@_spi(Testing) import RASDDatastore
import RASDTestSupport
import Testing

/// Suffix arrays against sorting the suffixes directly, and the two-thread induction against
/// the sequential one on inputs large enough to go through many blocks.
@Suite struct SuffixSortingTests {
    private func bruteForce(_ t: [UInt32]) -> [Int32] {
        (0..<t.count).sorted { a, b in t[a...].lexicographicallyPrecedes(t[b...]) }.map { Int32($0) }
    }

    private func text(seed: UInt64, count: Int, alphabet: Int, runs: Bool) -> [UInt32] {
        var rng = SplitMix64(seed: seed)
        var out: [UInt32] = []
        while out.count < count {
            let symbol = UInt32(rng.next() % UInt64(alphabet))
            let length = runs ? Int(rng.next() % 9) + 1 : 1
            out += repeatElement(symbol, count: min(length, count - out.count))
            // Copy an earlier stretch now and then: long repeats drive the recursion.
            if out.count > 50, rng.next() % 5 == 0 {
                let start = Int(rng.next() % UInt64(out.count - 40))
                out += out[start..<(start + min(40, count - out.count))]
            }
        }
        return out
    }

    @Test func sequentialAndPipelinedEqualBruteForce() {
        for seed in 0..<40 as Range<UInt64> {
            let t = text(seed: seed, count: 200 + Int(seed) * 37, alphabet: [2, 3, 5, 40, 300][Int(seed) % 5], runs: seed % 2 == 0)
            let expected = bruteForce(t)
            #expect(SuffixSortingForTesting.suffixArray(t, alphabetSize: 300, pipelineBlock: nil) == expected, "seed \(seed)")
            // Blocks of 16 entries: every path of the pipelined induction, many times over.
            #expect(SuffixSortingForTesting.suffixArray(t, alphabetSize: 300, pipelineBlock: 16) == expected, "seed \(seed) pipelined")
        }
    }

    @Test func pipelinedEqualsSequentialOnLargeInputs() {
        for (seed, alphabet) in [(UInt64(1), 4), (2, 1000), (3, 60_000)] {
            let t = text(seed: seed, count: 400_000, alphabet: alphabet, runs: true)
            let sequential = SuffixSortingForTesting.suffixArray(t, alphabetSize: alphabet, pipelineBlock: nil)
            for block in [64, 4096] {
                #expect(SuffixSortingForTesting.suffixArray(t, alphabetSize: alphabet, pipelineBlock: block) == sequential)
            }
        }
    }
}

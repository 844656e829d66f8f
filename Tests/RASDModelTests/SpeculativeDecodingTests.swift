import RASDModel
import Testing

/// Speculative decoding through verify/commit must equal plain greedy decoding token for token.
@Suite(.serialized) struct SpeculativeDecodingTests {
    static func greedy(_ model: LlamaModel, prompt: [UInt32], count: Int) throws -> [UInt32] {
        let session = try InferenceSession(model: model, capacity: 512)
        var next = try session.prefill(prompt)
        var out: [UInt32] = []
        while out.count < count {
            out.append(next)
            next = try session.decodeStep(next)
        }
        return out
    }

    /// Drafts trees from a noisy oracle: the true continuation, cut or corrupted at a random
    /// depth, plus random side branches; accepts the longest path that matches the argmax.
    static func speculative(_ model: LlamaModel, prompt: [UInt32], count: Int, oracle: [UInt32], seed: UInt64)
        throws -> (tokens: [UInt32], steps: Int)
    {
        let session = try InferenceSession(model: model, capacity: 512)
        var rng = SplitMix(seed: seed)
        var pending = try session.prefill(prompt)
        var out: [UInt32] = [pending]
        var steps = 0
        while out.count < count {
            var tokens: [UInt32] = [pending], parents: [Int32] = [-1]
            var parent = 0
            for depth in 0..<rng.below(8) {
                let truth = out.count + depth < oracle.count ? oracle[out.count + depth] : 0
                tokens.append(rng.below(5) == 0 ? UInt32(rng.below(49152)) : truth)
                parents.append(Int32(parent))
                parent = tokens.count - 1
            }
            for _ in 0..<rng.below(12) {
                parents.append(Int32(rng.below(tokens.count)))
                tokens.append(UInt32(rng.below(49152)))
            }
            let argmax = try session.verify(tokens: tokens, parents: parents)
            steps += 1
            var path = [0]
            while let child = tokens.indices.first(where: { Int(parents[$0]) == path.last && tokens[$0] == argmax[path.last ?? 0] }) {
                path.append(child)
            }
            try session.commit(path: path)
            out += path.dropFirst().map { tokens[$0] }
            pending = argmax[path.last ?? 0]
            out.append(pending)
        }
        return (Array(out.prefix(count)), steps)
    }

    @Test func verifyAndCommitReproduceGreedyDecoding() throws {
        let model = try Fixtures.model.get()
        let prompts: [[UInt32]] = [Fixtures.chatPrompt, Fixtures.randomTokens(count: 9, seed: 5)]
        for (p, prompt) in prompts.enumerated() {
            let reference = try Self.greedy(model, prompt: prompt, count: 40)
            let spec = try Self.speculative(model, prompt: prompt, count: 40, oracle: reference, seed: UInt64(p))
            #expect(spec.tokens == reference, "prompt \(p)")
            // The oracle drafts were accepted at least sometimes: fewer steps than tokens.
            #expect(spec.steps < 40, "prompt \(p): \(spec.steps) steps")
        }
    }
}

import RASDModel
import Testing

/// A token's logits and hidden state must be bit-identical alone, in a prompt batch, inside any
/// tree, with any thread count and any kernel path.
@Suite(.serialized) struct BatchInvarianceTests {
    /// Logits and hidden state of every position of `tokens`, computed one token at a time.
    static func stepwise(_ model: LlamaModel, _ tokens: [UInt32], threads: Int = 2, kernels: KernelPath? = nil) throws
        -> (logits: [[UInt32]], hidden: [[UInt32]])
    {
        let session = try InferenceSession(model: model, capacity: 256, threads: threads, kernels: kernels)
        var logits: [[UInt32]] = [], hidden: [[UInt32]] = []
        for t in tokens {
            try session.decodeStep(t)
            logits.append(try session.lastLogits().bits)
            hidden.append(try session.hiddenState(node: 0).bits)
        }
        return (logits, hidden)
    }

    @Test func promptBatchEqualsOneTokenAtATime() throws {
        let model = try Fixtures.model.get()
        let tokens = Array(Fixtures.chatPrompt.prefix(24))
        let alone = try Self.stepwise(model, tokens)
        let session = try InferenceSession(model: model, capacity: 256)
        let argmax = try session.verify(tokens: tokens, parents: (0..<tokens.count).map { Int32($0) - 1 })
        for i in tokens.indices {
            #expect(try session.logits(node: i).bits == alone.logits[i], "position \(i)")
            #expect(try session.hiddenState(node: i).bits == alone.hidden[i], "position \(i)")
            let maxBits = alone.logits[i].map { Float(bitPattern: $0) }.max()
            #expect(try session.logits(node: i)[Int(argmax[i])] == maxBits)
        }
        // prefill in chunks equals the same: the KV it commits gives the same next step.
        let chunked = try InferenceSession(model: model, capacity: 256)
        try chunked.prefill(tokens)
        #expect(try chunked.lastLogits().bits == alone.logits.last)
    }

    @Test func threadCountsAndKernelPathsAgreeBitForBit() throws {
        let model = try Fixtures.model.get()
        let tokens = Fixtures.randomTokens(count: 12, seed: 7)
        let reference = try Self.stepwise(model, tokens, threads: 1, kernels: .portable)
        for path in KernelPath.available {
            for threads in [1, 2, 3] {
                let other = try Self.stepwise(model, tokens, threads: threads, kernels: path)
                #expect(other.logits == reference.logits, "\(path), \(threads) threads")
                #expect(other.hidden == reference.hidden, "\(path), \(threads) threads")
            }
        }
    }

    @Test func nodesOfRandomTreesEqualTheirPathComputedAlone() throws {
        let model = try Fixtures.model.get()
        let context = Array(Fixtures.chatPrompt.prefix(20))
        let continuation = Fixtures.randomTokens(count: 10, seed: 11)
        let alone = try Self.stepwise(model, context + continuation)
        var rng = SplitMix(seed: 99)
        for trial in 0..<6 {
            // A random tree over 1...40 nodes with the true continuation as one branch, its
            // nodes scattered among distractors (parents always earlier).
            let session = try InferenceSession(model: model, capacity: 256, threads: 1 + trial % 2)
            try session.prefill(context)
            var tokens: [UInt32] = [], parents: [Int32] = [], truePath: [Int] = []
            let size = 1 + rng.below(40)
            while tokens.count < size {
                let extendPath = truePath.count < continuation.count && rng.below(3) == 0
                if extendPath {
                    parents.append(Int32(truePath.last ?? -1))
                    tokens.append(continuation[truePath.count])
                    truePath.append(tokens.count - 1)
                } else {
                    parents.append(Int32(rng.below(tokens.count + 1)) - 1)
                    tokens.append(UInt32(rng.below(49152)))
                }
            }
            _ = try session.verify(tokens: tokens, parents: parents)
            for (depth, node) in truePath.enumerated() {
                #expect(try session.logits(node: node).bits == alone.logits[context.count + depth], "trial \(trial) depth \(depth)")
                #expect(try session.hiddenState(node: node).bits == alone.hidden[context.count + depth])
            }
            // Committing the true path leaves the same KV as computing it alone.
            try session.commit(path: truePath)
            if truePath.count < continuation.count {
                try session.decodeStep(continuation[truePath.count])
                #expect(try session.lastLogits().bits == alone.logits[context.count + truePath.count], "trial \(trial) after commit")
            }
        }
    }

    @Test func truncateRollsBackExactly() throws {
        let model = try Fixtures.model.get()
        let tokens = Fixtures.randomTokens(count: 16, seed: 3)
        let alone = try Self.stepwise(model, tokens)
        let session = try InferenceSession(model: model, capacity: 256)
        try session.prefill(Array(tokens.prefix(12)) + [5, 6, 7])
        try session.truncate(to: 12)
        #expect(session.committedTokens == Array(tokens.prefix(12)))
        try session.decodeStep(tokens[12])
        #expect(try session.lastLogits().bits == alone.logits[12])
    }
}

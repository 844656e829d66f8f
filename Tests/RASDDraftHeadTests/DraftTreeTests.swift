import Foundation
import RASDDecoding
import RASDDraftHead
import RASDModel
import RASDTrees
import Testing

/// The head's tree attention and the EAGLE-2 dynamic draft tree, on the real model and head.
@Suite(.serialized) struct DraftTreeTests {
    /// The prompt's tokens and the target's hidden states after each.
    static func prompt(_ f: Fixture, _ text: String) throws -> (tokens: [UInt32], states: [Float], next: UInt32) {
        let tokens = f.tokenizer.encode(text)
        let session = try InferenceSession(model: f.model, capacity: 256)
        var states: [Float] = []
        let next = try session.prefill(tokens) { _, chunk in states.append(contentsOf: chunk) }
        return (tokens, states, next)
    }

    @Test func aNodeInsideATreeEqualsItsPathAsAChain() throws {
        let f = try fixture()
        let d = f.head.config.embeddingLength
        let (tokens, states, _) = try Self.prompt(f, "def add(a, b):\n    return a + b\n\ndef sub(a, b):")
        // Chain: committed prompt pairs, then nodes x, y below the root.
        let rowFeatures = Array(states.suffix(3 * d))
        let chain = try DraftHeadSession(head: f.head, capacity: 128, threads: 1)
        let tree = try DraftHeadSession(head: f.head, capacity: 128, threads: 2)
        for s in [chain, tree] {
            let pairs = tokens.count - 1
            try Array(states.prefix(pairs * d)).withUnsafeBufferPointer {
                try s.forward(tokens: Array(tokens.dropFirst()), features: $0, parents: (0..<pairs).map { Int32($0) - 1 }, logitNodes: [])
            }
            try s.commitPrefix(pairs)
        }
        try rowFeatures.withUnsafeBufferPointer {
            try chain.forward(tokens: [10, 20, 30], features: $0, parents: [-1, 0, 1], logitNodes: [2])
        }
        // The same path (10, 20, 30) inside a tree with siblings, in two calls.
        try Array(rowFeatures.prefix(d) + rowFeatures.prefix(d)).withUnsafeBufferPointer {
            try tree.forward(tokens: [10, 11], features: $0, parents: [-1, -1], logitNodes: [])
        }
        let second = Array(rowFeatures[d..<(2 * d)] + rowFeatures[d..<(2 * d)] + rowFeatures[(2 * d)...])
        try second.withUnsafeBufferPointer {
            try tree.forward(tokens: [21, 20, 30], features: $0, parents: [1, 0, 3], logitNodes: [2])
        }
        #expect(Array(chain.predictedFeatures.suffix(d)) == Array(tree.predictedFeatures.suffix(d)))
        #expect(chain.probabilities == tree.probabilities)

        // Only a leading chain can be committed (nodes 0 and 1 are siblings); committing node 0
        // keeps the others, renumbered.
        #expect(throws: EngineError.self) { try tree.commitPrefix(2) }
        try tree.commitPrefix(1)
        #expect(tree.tentativeCount == 4 && tree.committedLength == tokens.count)
    }

    @Test func theDynamicTreeIsAncestorClosedAndRespectsTheBudget() throws {
        let f = try fixture()
        let (tokens, states, next) = try Self.prompt(f, "The quick brown fox jumps over the lazy dog. The quick brown")
        let drafter = try DraftHeadDrafter(head: f.head, capacity: 512)
        for budget in [0, 1, 2, 5, 16, 32, 63] {
            for options in [DraftTreeOptions(), DraftTreeOptions(topK: 4, depth: 8, minimumScore: 0), DraftTreeOptions(topK: 10, depth: 3, minimumScore: 0.1)] {
                drafter.options = options
                try drafter.begin(prompt: tokens, hiddenStates: states)
                let (tree, root) = try drafter.draft(after: next, budget: budget, rootTopK: 8)
                #expect(tree.count <= budget)
                #expect(root.count == 8)
                for i in 0..<tree.count {
                    let p = Int(tree.parents[i])
                    #expect(p < i)  // parents first: every prefix is a tree
                    if p >= 0 {
                        #expect(tree.scores[i] <= tree.scores[p])
                        #expect(tree.depths[i] == tree.depths[p] + 1)
                    } else if let p = root.probability(of: tree.tokens[i]) {
                        #expect(abs(p - tree.scores[i]) < 1e-6)  // a root child scores its root probability
                    } else {
                        #expect(options.topK > root.count)  // only children past the root top-8 are missing from it
                    }
                    #expect(tree.depths[i] <= Int32(options.depth))
                }
                // Paths are distinct, and nodes come best first.
                var seen = Set<[UInt32]>()
                for i in 0..<tree.count { #expect(seen.insert(tree.path(to: i)).inserted) }
                for i in 1..<max(1, tree.count) { #expect(tree.scores[i] <= tree.scores[i - 1]) }
            }
        }
    }

    /// A drafter computing on the target session's threads drafts the trees one with a thread
    /// of its own drafts, while the target verifies between its steps on the same threads.
    @Test func aDrafterSharingTheTargetsThreadsDraftsTheSameTrees() throws {
        let f = try fixture()
        let tokens = f.tokenizer.encode("def fibonacci(n):\n    if n < 2:\n        return n\n    return")
        let target = try InferenceSession(model: f.model, capacity: 256, threads: 2)
        var states: [Float] = []
        var next = try target.prefill(tokens) { _, chunk in states.append(contentsOf: chunk) }
        let shared = try DraftHeadDrafter(head: f.head, capacity: 512, sharingThreadsOf: target)
        let alone = try DraftHeadDrafter(head: f.head, capacity: 512, threads: 1)
        #expect(shared.session.threadCount == 2 && alone.session.threadCount == 1)
        for d in [shared, alone] { try d.begin(prompt: tokens, hiddenStates: states) }
        for _ in 0..<6 {
            let a = try shared.draft(after: next, budget: 16, rootTopK: 8)
            let b = try alone.draft(after: next, budget: 16, rootTopK: 8)
            #expect(a.tree.count > 0)
            #expect(a.tree.tokens == b.tree.tokens && a.tree.parents == b.tree.parents && a.tree.scores == b.tree.scores)
            #expect(a.root.tokens == b.root.tokens && a.root.probabilities == b.root.probabilities)
            // The target verifies the tree on the shared threads and accepts its greedy path.
            let argmax = try target.verify(tokens: [next] + a.tree.tokens, parents: [-1] + a.tree.parents.map { $0 < 0 ? 0 : $0 + 1 })
            var path = [0], row = 0
            while let child = (0..<a.tree.count).first(where: { Int(a.tree.parents[$0]) + 1 == row && a.tree.tokens[$0] == argmax[row] }) {
                row = child + 1
                path.append(row)
            }
            try target.commit(path: path)
            var accepted: [Float] = []
            for r in path.indices { accepted += try target.hiddenState(node: r, normalized: true) }
            let acceptedTokens = [next] + path.dropFirst().map { a.tree.tokens[$0 - 1] }
            for d in [shared, alone] { try d.accepted(tokens: acceptedTokens, hiddenStates: accepted) }
            next = argmax[row]
        }
    }

    @Test func badInputGetsClearErrors() throws {
        let f = try fixture()
        // The target model is not a draft head.
        let notAHead = #expect(throws: (any Error).self) { try DraftHead(path: f.model.path, target: f.model) }
        #expect("\(notAHead!)".contains("draft head"))
        let missing = #expect(throws: DraftHeadError.self) { try DraftHeadLocation.load("/nonexistent/head.gguf", model: f.model) }
        #expect(missing!.description.contains("/nonexistent/head.gguf"))
        let drafter = try DraftHeadDrafter(head: f.head, capacity: 64)
        #expect(throws: DraftHeadError.self) { try drafter.begin(prompt: [1, 2, 3], hiddenStates: [0, 1]) }
        let session = try DraftHeadSession(head: f.head, capacity: 4)
        let d = f.head.config.embeddingLength
        let five = [Float](repeating: 0, count: 5 * d)
        #expect(throws: EngineError.self) {
            try five.withUnsafeBufferPointer { try session.forward(tokens: [1, 2, 3, 4, 5], features: $0, parents: [-1, 0, 1, 2, 3], logitNodes: []) }
        }
        #expect(throws: EngineError.self) {
            try Array(five.prefix(d)).withUnsafeBufferPointer { try session.forward(tokens: [99_999], features: $0, parents: [-1], logitNodes: []) }
        }
    }
}

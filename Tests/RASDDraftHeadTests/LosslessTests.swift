import Foundation
import RASDDatastore
import RASDDecoding
import RASDDraftHead
import RASDGGUF
import RASDModel
import RASDTrees
import Testing

/// `draft` and `rasd` reproduce greedy decoding token for token, with the real model and head.
@Suite(.serialized) struct LosslessTests {
    static let prompts: [(text: String, chat: Bool)] = [
        ("def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n", false),
        ("What is a Python list comprehension?", true),
        ("The quick brown fox jumps over the lazy dog. The quick brown fox", false),
    ]

    @Test func draftAndRASDEqualGreedyDecoding() throws {
        let f = try fixture()
        let renderer = PromptRenderer(tokenizer: f.tokenizer)
        // A small datastore of text the prompts draw on, so rasd fuses retrieval too.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-draft-head-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let builder = try DatastoreBuilder(options: BuildOptions(
            output: path, vocabularySize: f.tokenizer.vocabularySize,
            tokenizer: TokenizerIdentity(name: f.tokenizer.name, fingerprint: f.tokenizer.fingerprint)))
        for doc in ["The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog again.",
                    "def is_prime(n):\n    if n < 2:\n        return False\n    for i in range(2, int(n ** 0.5) + 1):\n        if n % i == 0:\n            return False\n    return True\n"] {
            try builder.add(document: f.tokenizer.encode(doc))
        }
        try builder.finish()
        let store = try Datastore(path: path)
        let session = try InferenceSession(model: f.model, capacity: 1024)
        // The drafter computes on the target's threads, as `decode` and `eval` run it.
        let drafter = try DraftHeadDrafter(head: f.head, capacity: 1024 + DraftHeadDrafter.treeRoom, sharingThreadsOf: session)
        let costs = try VerifyCostModelCache.model(model: f.model, threads: 2, kernels: session.kernelPath, cacheDirectory: ReferenceModel.cacheDirectory)
        let decoder = SpeculativeDecoder(session: session, datastore: store, drafter: drafter, costs: costs)
        var draftAccepted = 0
        for p in Self.prompts {
            let prompt = try renderer.tokens(p.text, chat: p.chat)
            let (reference, _) = try decoder.generate(prompt: prompt, options: DecodeOptions(method: .ar, maxTokens: 48, stopTokens: renderer.stopTokens))
            for method in [DecodingMethod.draft, .rasd] {
                for budget in [TreeBudget.fixed(1), .fixed(8), .fixed(32), .adaptive(maximum: 63)] {
                    var streamed: [UInt32] = []
                    let (output, stats) = try decoder.generate(
                        prompt: prompt, options: DecodeOptions(method: method, maxTokens: 48, stopTokens: renderer.stopTokens, budget: budget)) { streamed += $0 }
                    #expect(output == reference, "\(method) \(budget) on \(p.text.prefix(30))")
                    #expect(streamed == output)
                    if case .fixed(let n) = budget { #expect(stats.verifiedNodes <= n * stats.steps) }
                    draftAccepted += stats.acceptedBySource["draft"] ?? 0
                }
            }
        }
        // The head's tokens were accepted, so the comparison exercised the drafter.
        #expect(draftAccepted > 50)
    }
}

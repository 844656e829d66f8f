import Testing
import RASDTrees

@Suite struct TokenTreeTests {
    @Test func draftScoresAreCumulativeProbabilities() throws {
        let tree = try TokenTree(draftTokens: [7, 8, 9, 10], parents: [-1, 0, 1, -1],
                                 probabilities: [0.5, 0.5, 0.25, 0.125])
        #expect(tree.scores == [0.5, 0.25, 0.0625, 0.125])
        #expect(tree.depths == [1, 2, 3, 1])
        #expect(tree.sources == Array(repeating: .draft, count: 4))
        #expect(tree.path(to: 2) == [7, 8, 9])
    }

    @Test func retrievalScoresAreFrequencies() throws {
        // 10 occurrences; root children counts 6 + 3 (one occurrence ended at the document end).
        let trie = CandidateTrie(matchLength: 3, occurrences: 10, tokens: [1, 2, 3, 4],
                                 parents: [-1, -1, 0, 2], counts: [6, 3, 5, 5])
        let tree = try TokenTree(retrieval: trie, source: .context)
        #expect(tree.scores == [0.6, 0.3, 0.5, 0.5])
        #expect(tree.depths == [1, 1, 2, 3])
        #expect(tree.sources == Array(repeating: .context, count: 4))
        // A sampled answer counts only the sample: the root children's counts.
        let sampled = CandidateTrie(matchLength: 3, occurrences: 1000, sampled: true, tokens: [1, 2],
                                    parents: [-1, -1], counts: [3, 1])
        #expect(try TokenTree(retrieval: sampled).scores == [0.75, 0.25])
        #expect(try TokenTree(retrieval: .empty).isEmpty)
    }

    @Test func byHandAndAppend() throws {
        var tree = try TokenTree(tokens: [5, 6], parents: [-1, 0], scores: [0.9, 0.4], source: .datastore)
        let index = try tree.append(token: 7, parent: 1, score: 0.1, sources: [.draft, .context])
        #expect(index == 2)
        #expect(tree.depths == [1, 2, 3])
        #expect(tree.sources[2] == [.draft, .context])
        #expect(tree.sources[2].description == "draft+context")
        // -0.0 is stored as +0.0 (ranking compares bit patterns).
        try tree.append(token: 8, parent: -1, score: -0.0, sources: .draft)
        #expect(tree.scores[3].sign == .plus)
    }

    @Test func invalidInputsAreTypedErrors() {
        func kind(_ body: () throws -> Void) -> TokenTreeError.Kind? {
            do { try body() } catch let error as TokenTreeError { return error.kind } catch { return nil }
            return nil
        }
        #expect(kind { _ = try TokenTree(tokens: [1, 2], parents: [-1], scores: [1, 1], source: .draft) } == .lengthMismatch)
        #expect(kind { _ = try TokenTree(tokens: [1, 2], parents: [-1, 1], scores: [1, 1], source: .draft) } == .parentOrder)
        #expect(kind { _ = try TokenTree(tokens: [1], parents: [-2], scores: [1], source: .draft) } == .parentOrder)
        #expect(kind { _ = try TokenTree(tokens: [1, 9], parents: [-1, 0], scores: [1, 1], source: .draft, vocabularySize: 9) }
            == .tokenOutOfVocabulary)
        #expect(kind { _ = try TokenTree(tokens: [1], parents: [-1], scores: [-1], source: .draft) } == .invalidScore)
        #expect(kind { _ = try TokenTree(tokens: [1], parents: [-1], scores: [.nan], source: .draft) } == .invalidScore)
        #expect(kind { _ = try TokenTree(tokens: [1], parents: [-1], scores: [.infinity], source: .draft) } == .invalidScore)
        #expect(kind { _ = try TokenTree(draftTokens: [1], parents: [-1], probabilities: [1.5]) } == .invalidScore)
        #expect(kind {
            _ = try TokenTree(retrieval: CandidateTrie(matchLength: 2, occurrences: 3, tokens: [1], parents: [-1], counts: [0]))
        } == .invalidCount)
        #expect(kind {
            _ = try TokenTree(retrieval: CandidateTrie(matchLength: 2, occurrences: 3, tokens: [1, 2], parents: [-1, 0], counts: [2, 3]))
        } == .invalidCount)
        #expect(kind {
            _ = try TokenTree(retrieval: CandidateTrie(matchLength: 2, occurrences: 3, tokens: [1, 2], parents: [1, -1], counts: [1, 1]))
        } == .parentOrder)
    }

    @Test func errorsNameTheInputAndNode() {
        do {
            _ = try TokenTree(draftTokens: [1, 2, 70000], parents: [-1, 0, 1], probabilities: [1, 1, 1], vocabularySize: 49152)
            Issue.record("no error")
        } catch let error as TokenTreeError {
            #expect(error.input == "draft")
            #expect(error.index == 2)
            #expect(error.description.contains("draft at 2"))
            #expect(error.description.contains("70000"))
        } catch {
            Issue.record("untyped error \(error)")
        }
    }

    @Test func failedReplaceLeavesAnEmptyTree() throws {
        var tree = try TokenTree(draftTokens: [1, 2], parents: [-1, 0], probabilities: [1, 1])
        #expect(throws: TokenTreeError.self) {
            try tree.replaceWithDraft(tokens: [1, 2], parents: [-1, 5], probabilities: [1, 1])
        }
        #expect(tree.isEmpty)
        try tree.replaceWithRetrieval(CandidateTrie(matchLength: 2, occurrences: 2, tokens: [4], parents: [-1], counts: [2]))
        #expect(tree.tokens == [4] && tree.scores == [1])
    }
}

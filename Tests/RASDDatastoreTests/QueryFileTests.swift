import Foundation
import RASDDatastore
import RASDTestSupport
import RASDTrees
import Testing

/// `rasd-index query --queries`: many contexts in one process, as scripts and the exactness
/// check use it. Checked through the real executable against brute force.
@Suite struct QueryFileTests {
    let exe = rasdIndexExecutable()

    private struct Answer: Decodable, Equatable {
        var matchLength: Int, occurrences: Int, sampled: Bool
        var tokens: [UInt32], parents: [Int32], counts: [UInt32]
    }

    @Test func answersEveryLineInOrderLikeTheLibrary() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: 91, documents: 300, vocabulary: 80)
        try buildDatastore(corpus, at: dir.file("ds"), vocabulary: 80)
        let contexts: [[UInt32]] = [Array(corpus[5].prefix(7)), Array(corpus[40].suffix(3)), [79, 78, 77, 79, 78, 77], [1]]
        // Extra fields (a benchmark query file) and blank lines are fine.
        let lines = contexts.enumerated().map { i, c in
            "{\"context\": [\(c.map(String.init).joined(separator: ","))], \"next\": [1], \"domain\": \"d\(i)\"}"
        }
        try (lines[0] + "\n\n" + lines[1...].joined(separator: "\n") + "\n").write(toFile: dir.file("q.jsonl"), atomically: false, encoding: .utf8)

        let run = try shell("\(exe) query \(dir.file("ds")) --queries \(dir.file("q.jsonl")) --json --max-nodes 20")
        #expect(run.status == 0, "\(run.err)")
        let answers = try run.out.split(separator: "\n").map { try JSONDecoder().decode(Answer.self, from: Data($0.utf8)) }
        let reference = BruteForceRetrieval(documents: corpus)
        var parameters = RetrievalParameters()
        parameters.maxNodes = 20
        #expect(answers.count == contexts.count)
        for (answer, context) in zip(answers, contexts) {
            let expected = reference.retrieve(context, parameters)
            #expect(answer == Answer(matchLength: expected.matchLength, occurrences: expected.occurrences, sampled: expected.sampled,
                                     tokens: expected.tokens, parents: expected.parents, counts: expected.counts))
        }
        #expect(answers.contains { $0.matchLength > 0 && !$0.tokens.isEmpty })
        #expect(answers.last?.matchLength == 0)  // a one-token context is below minMatch
    }

    @Test func badLinesAreNamed() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try buildDatastore(phraseCorpus(seed: 92, documents: 50, vocabulary: 40), at: dir.file("ds"), vocabulary: 40)
        try "{\"context\": [1, 2]}\n{\"ctx\": [1]}\n".write(toFile: dir.file("bad.jsonl"), atomically: false, encoding: .utf8)
        let bad = try shell("\(exe) query \(dir.file("ds")) --queries \(dir.file("bad.jsonl")) --json")
        #expect(bad.status != 0 && bad.err.contains("bad.jsonl line 2") && bad.err.contains("\"context\""), "\(bad.err)")

        try "{\"context\": [1, 2]}\n{\"context\": [3, 40]}\n".write(toFile: dir.file("range.jsonl"), atomically: false, encoding: .utf8)
        let range = try shell("\(exe) query \(dir.file("ds")) --queries \(dir.file("range.jsonl")) --json")
        #expect(range.status != 0 && range.err.contains("range.jsonl line 2") && range.err.contains("40"), "\(range.err)")

        let missing = try shell("\(exe) query \(dir.file("ds")) --queries \(dir.file("nope.jsonl"))")
        #expect(missing.status != 0 && missing.err.contains("nope.jsonl"))
        let both = try shell("\(exe) query \(dir.file("ds")) --queries \(dir.file("bad.jsonl")) --context 1,2")
        #expect(both.status != 0 && both.err.contains("either --context or --queries"))
        #expect(![bad, range, missing, both].contains { $0.err.contains("Fatal error") })
    }
}

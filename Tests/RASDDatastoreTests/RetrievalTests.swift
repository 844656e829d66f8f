import Foundation
import RASDDatastore
import RASDTestSupport
import RASDTrees
import Testing

/// Contexts that exercise the index: suffixes of real document prefixes (long matches), the end
/// of one document glued to the start of the next (a match must not cross), and random ids.
private func contexts(_ documents: [[UInt32]], vocabulary: Int, count: Int, seed: UInt64) -> [[UInt32]] {
    var rng = SplitMix64(seed: seed)
    var out: [[UInt32]] = []
    let nonEmpty = documents.filter { !$0.isEmpty }
    while out.count < count {
        switch rng.next() % 4 {
        case 0, 1:
            let d = nonEmpty[Int(rng.next() % UInt64(nonEmpty.count))]
            let end = Int(rng.next() % UInt64(d.count)) + 1
            out.append(Array(d[max(0, end - 20)..<end]))
        case 2:
            let a = nonEmpty[Int(rng.next() % UInt64(nonEmpty.count))]
            let b = nonEmpty[Int(rng.next() % UInt64(nonEmpty.count))]
            out.append(Array(a.suffix(6)) + Array(b.prefix(Int(rng.next() % 4))))
        default:
            out.append((0..<Int(rng.next() % 18)).map { _ in UInt32(rng.next() % UInt64(vocabulary)) })
        }
    }
    return out
}

@Suite struct RetrievalTests {
    @Test(arguments: [
        (UInt64(1), 300, 50, RetrievalParameters()),
        (UInt64(2), 200, 20, RetrievalParameters(maxNodes: 5)),
        (UInt64(3), 400, 300, RetrievalParameters(maxMatch: 4, minMatch: 1, continuationLength: 3, maxNodes: 64)),
        (UInt64(4), 150, 8, RetrievalParameters(maxMatch: 30, minMatch: 3, continuationLength: 12, maxNodes: 200)),
    ])
    func answersEqualBruteForce(seed: UInt64, documents: Int, vocabulary: Int, parameters: RetrievalParameters) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: seed, documents: documents, vocabulary: vocabulary)
        try buildDatastore(corpus, at: dir.file("ds"), vocabulary: vocabulary)
        let store = try Datastore(path: dir.file("ds"))
        let oracle = BruteForceRetrieval(documents: corpus)
        var matched = 0
        for context in contexts(corpus, vocabulary: vocabulary, count: 250, seed: seed &+ 100) {
            let expected = oracle.retrieve(context, parameters)
            let actual = try store.retrieve(context: context, parameters: parameters)
            #expect(actual == expected, "context \(context)")
            if expected.matchLength > 0 { matched += 1 }
        }
        // The comparison is only meaningful if most contexts match something.
        #expect(matched > 150)
    }

    @Test func shardsMergeToTheSameAnswers() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: 9, documents: 300, vocabulary: 40)
        try buildDatastore(corpus, at: dir.file("one"), vocabulary: 40)
        let header = try buildDatastore(corpus, at: dir.file("many"), vocabulary: 40, shardTokens: 700)
        #expect(header.shards > 10)
        let one = try Datastore(path: dir.file("one")), many = try Datastore(path: dir.file("many"))
        let oracle = BruteForceRetrieval(documents: corpus)
        for context in contexts(corpus, vocabulary: 40, count: 200, seed: 11) {
            let a = try many.retrieve(context: context)
            #expect(a == (try one.retrieve(context: context)))
            #expect(a == oracle.retrieve(context))
        }
    }

    @Test func largeVocabulariesUse32BitTokens() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let vocabulary = 200_000
        // Ids spread over the whole range, including the top.
        let base = phraseCorpus(seed: 5, documents: 200, vocabulary: 60)
        let corpus = base.map { $0.map { $0 * 3333 + 3 } }
        let header = try buildDatastore(corpus, at: dir.file("ds"), vocabulary: vocabulary)
        #expect(header.tokenWidth == 32)
        let store = try Datastore(path: dir.file("ds"))
        let oracle = BruteForceRetrieval(documents: corpus)
        for context in contexts(base, vocabulary: 60, count: 150, seed: 6).map({ $0.map { $0 * 3333 + 3 } }) {
            #expect(try store.retrieve(context: context) == oracle.retrieve(context))
        }
        let small = try buildDatastore([[1, 2, 3]], at: dir.file("narrow"), vocabulary: 65534)
        #expect(small.tokenWidth == 16)
    }

    @Test func highlyRepetitiveTextIsSortedCorrectly() throws {
        // Runs and periodic text drive suffix sorting into deep recursion.
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus: [[UInt32]] = [
            [UInt32](repeating: 7, count: 3000),
            (0..<3000).map { UInt32($0 % 3) },
            (0..<2000).map { UInt32(($0 / 5) % 2 + 7) },
            [7, 7, 7, 1, 0, 2, 7, 7],
            [],
            (0..<500).map { UInt32(($0 * $0) % 11) },
        ]
        try buildDatastore(corpus, at: dir.file("ds"), vocabulary: 12)
        let store = try Datastore(path: dir.file("ds"))
        let oracle = BruteForceRetrieval(documents: corpus)
        let probes: [[UInt32]] = [[7, 7], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7], [0, 1, 2, 0, 1], [8, 8, 8, 8, 8, 7], [1, 0, 2], [3, 5], [0, 4, 9, 5, 3]]
        for context in probes {
            #expect(try store.retrieve(context: context) == oracle.retrieve(context), "context \(context)")
        }
    }

    @Test func inputFormatsGiveTheSameDatastore() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: 21, documents: 120, vocabulary: 30) + [[]] + phraseCorpus(seed: 22, documents: 5, vocabulary: 30)
        for closing in [false, true] {
            try writeTokenFiles(corpus, tokens: dir.file("t.u32"), starts: dir.file("s.u64"), closingOffset: closing)
            let b = try DatastoreBuilder(options: BuildOptions(output: dir.file("files-\(closing)"), vocabularySize: 30))
            try PretokenizedCorpus.addTokenFile(tokens: dir.file("t.u32"), documents: dir.file("s.u64"), to: b)
            let header = try b.finish()
            #expect(header.documents == corpus.count && header.tokens == corpus.reduce(0) { $0 + $1.count })
            #expect(header.manifest.entries == 2)
        }
        let lines = corpus.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: "\n") + "\n"
        try lines.write(toFile: dir.file("c.jsonl"), atomically: false, encoding: .utf8)
        let b = try DatastoreBuilder(options: BuildOptions(output: dir.file("jsonl"), vocabularySize: 30))
        try PretokenizedCorpus.addJSONLines(path: dir.file("c.jsonl"), to: b)
        try b.finish()
        let stores = try ["files-false", "files-true", "jsonl"].map { try Datastore(path: dir.file($0)) }
        let oracle = BruteForceRetrieval(documents: corpus)
        for context in contexts(corpus, vocabulary: 30, count: 100, seed: 23) {
            let expected = oracle.retrieve(context)
            for s in stores { #expect(try s.retrieve(context: context) == expected) }
        }
    }

    @Test func concurrentQueriesAgreeWithSequentialOnes() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: 31, documents: 400, vocabulary: 100)
        try buildDatastore(corpus, at: dir.file("ds"), vocabulary: 100)
        let store = try Datastore(path: dir.file("ds"))
        let queries = contexts(corpus, vocabulary: 100, count: 400, seed: 32)
        let sequential = try queries.map { try store.retrieve(context: $0) }
        let parallel = try await withThrowingTaskGroup(of: (Int, [CandidateTrie]).self) { group in
            for t in 0..<4 {
                group.addTask {
                    var workspace = RetrievalWorkspace()
                    var answers: [CandidateTrie] = []
                    for q in queries {
                        var a = CandidateTrie.empty
                        try store.retrieve(context: q, parameters: RetrievalParameters(), workspace: &workspace, into: &a)
                        answers.append(a)
                    }
                    return (t, answers)
                }
            }
            var all: [[CandidateTrie]] = []
            for try await (_, answers) in group { all.append(answers) }
            return all
        }
        for answers in parallel { #expect(answers == sequential) }
    }

    @Test func contextsWithoutMatchGiveAnEmptyTrie() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try buildDatastore([[1, 2, 3, 4], [5, 6]], at: dir.file("ds"), vocabulary: 10)
        let store = try Datastore(path: dir.file("ds"))
        for context: [UInt32] in [[], [9], [9, 9, 9], [4, 5], [3, 4]] {
            let a = try store.retrieve(context: context)
            // [3, 4] ends a document: it matches, but nothing follows it.
            #expect(a.tokens.isEmpty && a.parents.isEmpty && a.counts.isEmpty)
            #expect(a.matchLength == (context == [3, 4] ? 2 : 0))
        }
    }
}

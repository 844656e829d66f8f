import Foundation
import RASDDatastore
import RASDTestSupport
import RASDTrees
import Testing

/// The kind of a thrown `DatastoreError`, or nil when something else (or nothing) was thrown.
private func errorKind(_ body: () throws -> Void) -> DatastoreError.Kind? {
    do {
        try body()
        return nil
    } catch let error as DatastoreError {
        return error.kind
    } catch {
        return nil
    }
}

private func replaceBytes(in file: String, _ old: String, with new: String) throws {
    precondition(old.utf8.count == new.utf8.count)
    var data = try Data(contentsOf: URL(fileURLWithPath: file))
    guard let range = data.range(of: Data(old.utf8)) else { throw CocoaError(.fileReadCorruptFile) }
    data.replaceSubrange(range, with: Data(new.utf8))
    try data.write(to: URL(fileURLWithPath: file))
}

@Suite struct BadInputTests {
    @Test func emptyCorpusIsRefusedAndLeavesNothing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        #expect(errorKind { try buildDatastore([], at: dir.file("ds"), vocabulary: 10) } == .emptyCorpus)
        #expect(errorKind { try buildDatastore([[], []], at: dir.file("ds"), vocabulary: 10) } == .emptyCorpus)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func tokenIdsAtOrAboveTheVocabularyAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let builder = try DatastoreBuilder(options: BuildOptions(output: dir.file("ds"), vocabularySize: 100))
        try builder.add(document: [1, 2, 3])
        do {
            try builder.add(document: [5, 99, 100, 7])
            Issue.record("token 100 was accepted with vocabulary 100")
        } catch let error as DatastoreError {
            #expect(error.kind == .tokenOutOfRange)
            #expect(error.message.contains("document 1") && error.message.contains("100") && error.message.contains("position 2"))
        }
        builder.cancel()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)

        try writeTokenFiles([[1, 2], [3, 70_000]], tokens: dir.file("t.u32"), starts: dir.file("s.u64"), closingOffset: false)
        let b2 = try DatastoreBuilder(options: BuildOptions(output: dir.file("ds"), vocabularySize: 49152, source: dir.file("t.u32")))
        #expect(errorKind { try PretokenizedCorpus.addTokenFile(tokens: dir.file("t.u32"), documents: dir.file("s.u64"), to: b2) } == .tokenOutOfRange)
    }

    @Test func truncatedAndInconsistentInputFilesAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try writeTokenFiles([[1, 2, 3], [4, 5]], tokens: dir.file("t.u32"), starts: dir.file("s.u64"), closingOffset: true)
        func attempt(_ tokens: String, _ starts: String?) -> DatastoreError.Kind? {
            errorKind {
                let b = try DatastoreBuilder(options: BuildOptions(output: dir.file("out"), vocabularySize: 10, force: true))
                try PretokenizedCorpus.addTokenFile(tokens: tokens, documents: starts, to: b)
                try b.finish()
            }
        }
        // A token file cut inside an id.
        var t = try Data(contentsOf: URL(fileURLWithPath: dir.file("t.u32")))
        try t.prefix(t.count - 1).write(to: URL(fileURLWithPath: dir.file("cut.u32")))
        #expect(attempt(dir.file("cut.u32"), dir.file("s.u64")) == .badInput)
        // A token file cut between ids: the starts point past its end.
        t = t.prefix(12)
        try t.write(to: URL(fileURLWithPath: dir.file("short.u32")))
        #expect(attempt(dir.file("short.u32"), dir.file("s.u64")) == .badInput)
        // Starts cut inside an offset, going backwards, not starting at zero.
        let s = try Data(contentsOf: URL(fileURLWithPath: dir.file("s.u64")))
        try s.prefix(s.count - 3).write(to: URL(fileURLWithPath: dir.file("cut.u64")))
        #expect(attempt(dir.file("t.u32"), dir.file("cut.u64")) == .badInput)
        var backwards = Data()
        for v: UInt64 in [0, 3, 1] { withUnsafeBytes(of: v.littleEndian) { backwards.append(contentsOf: $0) } }
        try backwards.write(to: URL(fileURLWithPath: dir.file("back.u64")))
        #expect(attempt(dir.file("t.u32"), dir.file("back.u64")) == .badInput)
        var late = Data()
        for v: UInt64 in [1, 3] { withUnsafeBytes(of: v.littleEndian) { late.append(contentsOf: $0) } }
        try late.write(to: URL(fileURLWithPath: dir.file("late.u64")))
        #expect(attempt(dir.file("t.u32"), dir.file("late.u64")) == .badInput)
        // Missing files.
        #expect(attempt(dir.file("absent.u32"), nil) == .notFound)
        #expect(attempt(dir.file("t.u32"), dir.file("absent.u64")) == .notFound)
        // Malformed JSON lines.
        for bad in ["[1, 2\n", "[1, -2]\n", "{\"tokens\": [1]}\n", "[1, 2] trailing\n", "[1,,2]\n"] {
            try bad.write(toFile: dir.file("bad.jsonl"), atomically: false, encoding: .utf8)
            #expect(
                errorKind {
                    let b = try DatastoreBuilder(options: BuildOptions(output: dir.file("out"), vocabularySize: 10, force: true))
                    try PretokenizedCorpus.addJSONLines(path: dir.file("bad.jsonl"), to: b)
                } == .badInput, "\(bad)")
        }
        // Nothing half-built was left behind.
        #expect(!FileManager.default.fileExists(atPath: dir.file("out")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).allSatisfy { !$0.contains(".partial-") })
    }

    @Test func missingForeignAndNewerDatastoresAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        #expect(errorKind { _ = try Datastore(path: dir.file("nothing")) } == .notFound)
        try FileManager.default.createDirectory(atPath: dir.file("empty"), withIntermediateDirectories: true)
        #expect(errorKind { _ = try Datastore(path: dir.file("empty")) } == .notADatastore)
        try FileManager.default.createDirectory(atPath: dir.file("garbage"), withIntermediateDirectories: true)
        try Data((0..<20000).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: URL(fileURLWithPath: dir.file("garbage/data.mdb")))
        #expect(errorKind { _ = try Datastore(path: dir.file("garbage")) } == .notADatastore)

        try buildDatastore([[1, 2, 3]], at: dir.file("newer"), vocabulary: 10)
        try replaceBytes(in: dir.file("newer/data.mdb"), "\"formatVersion\":1", with: "\"formatVersion\":7")
        let error = try #require(throws: DatastoreError.self) { try Datastore(path: dir.file("newer")) }
        #expect(error.kind == .newerFormat && error.description.contains("7"))

        try buildDatastore([[1, 2, 3]], at: dir.file("foreign"), vocabulary: 10)
        try replaceBytes(in: dir.file("foreign/data.mdb"), "\"format\":\"rasd-datastore\"", with: "\"format\":\"xyzw-datastore\"")
        #expect(errorKind { _ = try Datastore(path: dir.file("foreign")) } == .notADatastore)
    }

    @Test func corruptedBytesAreDetected() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: 41, documents: 3000, vocabulary: 500)
        try buildDatastore(corpus, at: dir.file("ds"), vocabulary: 500)
        let original = try Data(contentsOf: URL(fileURLWithPath: dir.file("ds/data.mdb")))
        let clean = try Datastore(path: dir.file("ds")).verify()
        #expect(clean.isClean && clean.rowsWalked > 0 && clean.valuesChecked > 10)
        var detected = 0
        var rng = SplitMix64(seed: 42)
        for _ in 0..<40 {
            // Flip one byte anywhere past LMDB's two meta pages.
            var damaged = original
            let at = 8192 + Int(rng.next() % UInt64(original.count - 8192))
            damaged[at] ^= 0x41
            try damaged.write(to: URL(fileURLWithPath: dir.file("ds/data.mdb")))
            // Either opening refuses the datastore, or the byte was unused (free page space) and
            // every answer is still right; a damaged datastore must never answer.
            do {
                let store = try Datastore(path: dir.file("ds"))
                let report = store.verify()
                if !report.isClean { detected += 1; continue }
                let reference = BruteForceRetrieval(documents: corpus)
                for doc in corpus.prefix(20) where doc.count > 4 {
                    let context = Array(doc.prefix(4))
                    #expect(try store.retrieve(context: context) == reference.retrieve(context))
                }
            } catch let error as DatastoreError {
                #expect([.corrupt, .notADatastore].contains(error.kind), "\(error)")
                detected += 1
            }
        }
        #expect(detected > 20)
        try original.write(to: URL(fileURLWithPath: dir.file("ds/data.mdb")))
        #expect(try Datastore(path: dir.file("ds")).verify().isClean)
    }

    @Test func contextsAndParametersAreChecked() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try buildDatastore([[1, 2, 3]], at: dir.file("ds"), vocabulary: 10)
        let store = try Datastore(path: dir.file("ds"))
        #expect(errorKind { _ = try store.retrieve(context: [1, 10]) } == .tokenOutOfRange)
        #expect(errorKind { _ = try store.retrieve(context: [1, 2], parameters: RetrievalParameters(maxMatch: 1, minMatch: 2)) } == .invalidArgument)
        #expect(errorKind { _ = try store.retrieve(context: [1, 2], parameters: RetrievalParameters(maxNodes: 1_000_000)) } == .invalidArgument)
        #expect(try store.retrieve(context: [1, 2], parameters: RetrievalParameters(maxNodes: 0)).count == 0)
    }

    @Test func tokenizerIdentityIsEnforced() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let mine = TokenizerIdentity(name: "test BPE", fingerprint: String(repeating: "ab", count: 32))
        let builder = try DatastoreBuilder(options: BuildOptions(output: dir.file("ds"), vocabularySize: 10, tokenizer: mine))
        try builder.add(document: [1, 2])
        try builder.finish()
        _ = try Datastore(path: dir.file("ds"), expectedTokenizer: mine)
        let other = TokenizerIdentity(name: "other BPE", fingerprint: String(repeating: "cd", count: 32))
        let error = try #require(throws: DatastoreError.self) { try Datastore(path: dir.file("ds"), expectedTokenizer: other) }
        #expect(error.kind == .tokenizerMismatch && error.description.contains("test BPE") && error.description.contains("other BPE"))
    }
}

import Foundation
import RASDDatastore
import RASDTestSupport
import RASDTrees
import Testing

/// Builds go through the real `rasd-index` executable here: what is checked is what a user sees
/// when a build is refused, killed, or runs out of disk.
@Suite struct AtomicBuildTests {
    let exe = rasdIndexExecutable()

    private func partials(_ dir: TemporaryDirectory) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".partial-") }
    }

    @Test func existingDatastoresAreReplacedOnlyWithForce() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let old = phraseCorpus(seed: 51, documents: 100, vocabulary: 50)
        let new = phraseCorpus(seed: 52, documents: 100, vocabulary: 50)
        try buildDatastore(old, at: dir.file("ds"), vocabulary: 50)
        try writeTokenFiles(new, tokens: dir.file("t.u32"), starts: dir.file("s.u64"), closingOffset: false)
        let refused = try shell("\(exe) build corpus \(dir.file("t.u32")) --documents \(dir.file("s.u64")) --vocab-size 50 --output \(dir.file("ds"))")
        #expect(refused.status != 0 && refused.err.contains("--force"))
        let probe = Array(old[3].prefix(5))
        #expect(try Datastore(path: dir.file("ds")).retrieve(context: probe) == BruteForceRetrieval(documents: old).retrieve(probe))

        let forced = try shell("\(exe) build corpus \(dir.file("t.u32")) --documents \(dir.file("s.u64")) --vocab-size 50 --output \(dir.file("ds")) --force")
        #expect(forced.status == 0, "\(forced.err)")
        #expect(try Datastore(path: dir.file("ds")).retrieve(context: probe) == BruteForceRetrieval(documents: new).retrieve(probe))
        #expect(try partials(dir).isEmpty)
    }

    @Test func aKilledBuildLeavesThePreviousDatastoreIntact() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let old = phraseCorpus(seed: 61, documents: 200, vocabulary: 300)
        try buildDatastore(old, at: dir.file("ds"), vocabulary: 300)
        let before = try Datastore(path: dir.file("ds")).info.header
        // A bigger corpus so that the build is still running when it is killed.
        let big = phraseCorpus(seed: 62, documents: 120_000, vocabulary: 300)
        try writeTokenFiles(big, tokens: dir.file("t.u32"), starts: dir.file("s.u64"), closingOffset: false)
        for delay in [50_000, 300_000, 800_000] as [UInt32] {
            let build = try launch(
                exe, ["build", "corpus", dir.file("t.u32"), "--documents", dir.file("s.u64"), "--vocab-size", "300", "--output", dir.file("ds"), "--force"])
            usleep(delay)
            kill(build.processIdentifier, SIGKILL)
            build.waitUntilExit()
            // Killed or finished: the datastore is the old one or the complete new one, never a mix.
            let store = try Datastore(path: dir.file("ds"))
            #expect(store.verify().isClean)
            let header = store.info.header
            if build.terminationReason == .exit && build.terminationStatus == 0 {
                #expect(header.documents == big.count)
            } else {
                #expect(header == before)
            }
        }
        // The next build removes what killed builds left behind, and succeeds.
        try buildDatastore(old, at: dir.file("ds"), vocabulary: 300, force: true)
        #expect(try partials(dir).isEmpty)
        #expect(try Datastore(path: dir.file("ds")).info.header.documents == old.count)
    }

    @Test func aFullDiskGivesACleanErrorAndLeavesNothing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: 71, documents: 40_000, vocabulary: 2000)
        try writeTokenFiles(corpus, tokens: dir.file("t.u32"), starts: dir.file("s.u64"), closingOffset: false)
        // A file-size limit makes every write past 1 MiB fail with EFBIG, as a full disk fails
        // with ENOSPC; SIGXFSZ is ignored so that the write returns the error.
        let run = try shell(
            "ulimit -f 1024; trap '' XFSZ; \(exe) build corpus \(dir.file("t.u32")) --documents \(dir.file("s.u64")) --vocab-size 2000 --output \(dir.file("ds"))")
        #expect(run.status != 0)
        #expect(run.err.contains(dir.file("ds")) && run.err.contains("file size limit") && !run.err.contains(".partial-"), "\(run.err)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("ds")))
        #expect(try partials(dir).isEmpty)
    }

    @Test func anUnwritableOutputGivesACleanError() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try writeTokenFiles([[1, 2, 3]], tokens: dir.file("t.u32"), starts: dir.file("s.u64"), closingOffset: false)
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: dir.file("file")))
        // Under a regular file: cannot be created, whoever runs the test (root included).
        let run = try shell("\(exe) build corpus \(dir.file("t.u32")) --documents \(dir.file("s.u64")) --vocab-size 10 --output \(dir.file("file/ds"))")
        #expect(run.status != 0 && run.err.contains("file/ds") || run.err.contains(dir.file("file")), "\(run.err)")
        #expect(!run.err.contains("Fatal error"))
        let missing = try shell("\(exe) info \(dir.file("nope"))")
        #expect(missing.status != 0 && missing.err.contains("nope") && missing.err.contains("no datastore here"))
    }

    @Test func manyProcessesReadTheSameDatastoreAtOnce() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let corpus = phraseCorpus(seed: 81, documents: 500, vocabulary: 100)
        try buildDatastore(corpus, at: dir.file("ds"), vocabulary: 100)
        let context = corpus[7].prefix(6).map(String.init).joined(separator: ",")
        let expected = try Datastore(path: dir.file("ds")).retrieve(context: corpus[7].prefix(6).map { $0 })
        let queries = try (0..<6).map { try launch(exe, ["query", dir.file("ds"), "--context", context, "--json"], output: dir.file("q\($0).json")) }
        for q in queries {
            q.waitUntilExit()
            #expect(q.terminationStatus == 0)
        }
        for i in 0..<6 {
            let json = try String(contentsOfFile: dir.file("q\(i).json"), encoding: .utf8)
            #expect(json.contains("\"matchLength\":\(expected.matchLength),\"occurrences\":\(expected.occurrences)"))
            #expect(json.contains("\"counts\":[" + expected.counts.map(String.init).joined(separator: ",") + "]"))
        }
    }
}

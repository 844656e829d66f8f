import Foundation
import RASDDatastore
import RASDTestSupport
import RASDService
import RASDTrees
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real `rasd-index serve` process: socket file handling, signals, reload, the CLI.
@Suite(.serialized) struct DaemonLifecycleTests {
    @Test func startsReadyWithAPrivateSocketAndLogsEachDatastore() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let a = try TestDatastore(at: dir.file("a"), seed: 31)
        let b = try TestDatastore(at: dir.file("b"), seed: 32)
        let daemon = try DaemonProcess(
            socketPath: dir.file("s"), arguments: ["--datastore", "one=\(a.path)", "--datastore", b.path], logPath: dir.file("log"))
        defer { daemon.terminate() }
        var info = stat()
        #expect(stat(dir.file("s"), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let client = try RetrievalClient(socketPath: dir.file("s"))
        #expect(try client.datastores().map(\.name) == ["one", "b"])
        let log = daemon.log()
        #expect(log.components(separatedBy: "opened datastore").count - 1 == 2)
        #expect(log.contains("datastore=one") && log.contains("datastore=b"))

        // Nothing is logged per request at the default level.
        let before = daemon.log().count
        for context in sampleContexts(a.documents, count: 50, vocabulary: testVocabulary, seed: 1) {
            _ = try client.retrieve(datastore: "one", context: context)
        }
        _ = serviceError { _ = try client.retrieve(datastore: "zzz", context: [1]) }
        #expect(daemon.log().count == before)

        // A wider mode on request.
        let wide = try DaemonProcess(
            socketPath: dir.file("w"), arguments: ["--datastore", a.path, "--socket-mode", "0660"], logPath: dir.file("log2"))
        defer { wide.terminate() }
        #expect(stat(dir.file("w"), &info) == 0 && info.st_mode & 0o777 == 0o660)
    }

    @Test func aStaleSocketIsReplacedAndALiveOneIsNeverStolen() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 33)
        let socketPath = dir.file("s")

        // A socket file left by a dead process: bound, never listened on, closed.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(socketPath.utf8))
            raw[socketPath.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(fd)
        #expect(serviceError { _ = try RetrievalClient(socketPath: socketPath) }?.code == .cannotConnect)

        let daemon = try DaemonProcess(socketPath: socketPath, arguments: ["--datastore", "ds=\(ds.path)"], logPath: dir.file("log"))
        defer { daemon.terminate() }
        #expect(daemon.log().contains("stale"))
        let client = try RetrievalClient(socketPath: socketPath)
        let context = sampleContexts(ds.documents, count: 1, vocabulary: testVocabulary, seed: 2)[0]
        #expect(try client.retrieve(datastore: "ds", context: context) == (try ds.store.retrieve(context: context)))

        // A second daemon on the live socket refuses to start and leaves the first alone.
        let second = try DaemonProcess(
            socketPath: socketPath, arguments: ["--datastore", "ds=\(ds.path)"], logPath: dir.file("log2"), waitForSocket: false)
        let status = second.waitForExit(timeout: 30)
        #expect(status != nil && status != 0)
        #expect(second.log().contains("already listening on \(socketPath)"))
        #expect(try client.retrieve(datastore: "ds", context: context) == (try ds.store.retrieve(context: context)))
        #expect(try RetrievalClient(socketPath: socketPath).stats().pid == Int(daemon.process.processIdentifier))

        // Something that is not a socket is refused too.
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file("file")))
        let third = try DaemonProcess(
            socketPath: dir.file("file"), arguments: ["--datastore", "ds=\(ds.path)"], logPath: dir.file("log3"), waitForSocket: false)
        #expect(third.waitForExit(timeout: 30).map { $0 != 0 } == true)
        #expect(third.log().contains("is not a socket"))
        #expect((try? String(contentsOfFile: dir.file("file"), encoding: .utf8)) == "x")
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalFinishesInFlightRequestsRemovesTheSocketAndExitsZero(signo: Int32) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 34, documents: 3000)
        let daemon = try DaemonProcess(socketPath: dir.file("s"), arguments: ["--datastore", "ds=\(ds.path)"], logPath: dir.file("log"))
        defer { daemon.terminate() }
        let idle = try RetrievalClient(socketPath: dir.file("s"))  // an idle connection must not hold the exit up
        _ = idle
        let client = try RetrievalClient(socketPath: dir.file("s"))
        let contexts = sampleContexts(ds.documents, count: 400, vocabulary: testVocabulary, seed: 3)
        let parameters = RetrievalParameters(continuationLength: 32, maxNodes: 1000)
        // Queue a lot of work, make sure the server has started on it, then signal.
        for _ in 0..<5 { for c in contexts { try client.sendRetrieve(datastore: "ds", context: c, parameters: parameters) } }
        try client.flush()
        var answer = CandidateTrie.empty
        try client.receiveRetrieve(into: &answer)
        daemon.signal(signo)
        var wrong = 0
        for (i, c) in (Array(repeating: contexts, count: 5).joined()).dropFirst().enumerated() {
            try client.receiveRetrieve(into: &answer)
            if answer != (try ds.store.retrieve(context: c, parameters: parameters)) { wrong += 1 }
            _ = i
        }
        #expect(wrong == 0)
        #expect(daemon.waitForExit(timeout: 30) == 0)
        #expect(!FileManager.default.fileExists(atPath: dir.file("s")))
        #expect(daemon.log().contains("shutting down") && daemon.log().contains("stopped"))
        #expect(serviceError { _ = try client.retrieve(datastore: "ds", context: [1]) }?.code == .disconnected)
    }

    @Test func reloadPicksUpARebuiltDatastoreWhileClientsKeepQuerying() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.file("ds")
        let v1 = try TestDatastore(at: path, seed: 41)
        let v1Store = v1.store  // stays readable after the rebuild replaces the directory
        let daemon = try DaemonProcess(socketPath: dir.file("s"), arguments: ["--datastore", "ds=\(path)"], logPath: dir.file("log"))
        defer { daemon.terminate() }
        let contexts = sampleContexts(v1.documents, count: 100, vocabulary: testVocabulary, seed: 4)
        let v1Answers = try contexts.map { try v1Store.retrieve(context: $0) }

        // A client that keeps querying through the rebuild and the reload.
        final class Tally: @unchecked Sendable {
            var answers: [Int: [CandidateTrie]] = [:]
            var errors: [String] = []
            var count = 0
            let lock = NSLock()
        }
        let tally = Tally()
        let stop = Locked(false)
        let socketPath = dir.file("s")
        let querying = Thread {
            do {
                let client = try RetrievalClient(socketPath: socketPath)
                while !stop.withLock({ $0 }) {
                    for (i, c) in contexts.enumerated() {
                        let a = try client.retrieve(datastore: "ds", context: c)
                        tally.lock.lock()
                        tally.answers[i, default: []].append(a)
                        tally.count += 1
                        tally.lock.unlock()
                    }
                }
            } catch {
                tally.lock.lock()
                tally.errors.append("\(error)")
                tally.lock.unlock()
            }
        }
        querying.start()

        // Rebuild in place (atomic rename), then SIGHUP.
        let v2 = try TestDatastore(at: path, seed: 42, force: true)
        let v2Answers = try contexts.map { try v2.store.retrieve(context: $0) }
        #expect(v1Answers != v2Answers)
        daemon.signal(SIGHUP)
        let client = try RetrievalClient(socketPath: socketPath)
        let deadline = Date().addingTimeInterval(20)
        while try client.datastores()[0].generation < 2 && Date() < deadline { usleep(20_000) }
        #expect(try client.datastores()[0].generation == 2)
        #expect(try contexts.map { try client.retrieve(datastore: "ds", context: $0) } == v2Answers)
        usleep(100_000)
        stop.withLock { $0 = true }
        while !querying.isFinished { usleep(10_000) }
        #expect(tally.errors.isEmpty, "\(tally.errors)")
        // Every answer during the swap is exactly the old or the new datastore's.
        var strays = 0
        for (i, answers) in tally.answers {
            for a in answers where a != v1Answers[i] && a != v2Answers[i] { strays += 1 }
        }
        #expect(strays == 0 && tally.count > 100)

        // A reload request: unchanged files are left alone; a third build is picked up.
        #expect(try client.reload().map(\.status) == [.unchanged])
        let v3 = try TestDatastore(at: path, seed: 43, force: true)
        let outcome = try client.reload(datastore: "ds")
        #expect(outcome.map(\.status) == [.reloaded] && outcome[0].generation == 3)
        #expect(try contexts.map { try client.retrieve(datastore: "ds", context: $0) } == (try contexts.map { try v3.store.retrieve(context: $0) }))

        // A failed reload keeps the previous version serving and says why.
        try FileManager.default.moveItem(atPath: path, toPath: dir.file("moved"))
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        try Data(repeating: 7, count: 8192).write(to: URL(fileURLWithPath: path + "/data.mdb"))
        let failed = serviceError { _ = try client.reload() }
        #expect(failed?.code == .reloadFailed)
        #expect(failed?.message.contains("\"ds\"") == true && failed?.message.contains("generation 3") == true)
        #expect(try contexts.map { try client.retrieve(datastore: "ds", context: $0) } == (try contexts.map { try v3.store.retrieve(context: $0) }))
        let stats = try client.stats()
        #expect(stats.reloads.failures == 1 && stats.reloads.reopened == 2 && stats.datastores[0].generation == 3)
    }

    @Test func queryThroughTheDaemonPrintsWhatInProcessQueryPrints() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 51)
        let daemon = try DaemonProcess(socketPath: dir.file("s"), arguments: ["--datastore", "code=\(ds.path)"], logPath: dir.file("log"))
        defer { daemon.terminate() }
        for context in sampleContexts(ds.documents, count: 5, vocabulary: testVocabulary, seed: 5) where !context.isEmpty {
            let ids = context.map(String.init).joined(separator: ",")
            let local = try run(["query", ds.path, "--context", ids, "--json", "--max-nodes", "20"])
            let remote = try run(["query", "--socket", dir.file("s"), "--datastore", "code", "--context", ids, "--json", "--max-nodes", "20"])
            #expect(local.0 == 0 && remote.0 == 0)
            #expect(local.1 == remote.1 && local.1.hasPrefix("{\"matchLength\":"))
        }
        let unknown = try run(["query", "--socket", dir.file("s"), "--datastore", "docs", "--context", "1,2", "--json"])
        #expect(unknown.0 != 0 && unknown.1.contains("no datastore named \"docs\""))
        let missing = try run(["query", "--socket", dir.file("nope"), "--datastore", "code", "--context", "1"])
        #expect(missing.0 != 0 && missing.1.contains("no daemon socket at"))

        let table = try run(["stats", "--socket", dir.file("s")])
        #expect(table.0 == 0 && table.1.contains("retrieve ") && table.1.contains("code "))
        let prometheus = try run(["stats", "--socket", dir.file("s"), "--prometheus"])
        #expect(prometheus.0 == 0 && prometheus.1.contains("rasd_retrievals_total 5"))
        let reload = try run(["reload", "--socket", dir.file("s")])
        #expect(reload.0 == 0 && reload.1.contains("code: unchanged"))
    }

    @Test func aQueryFileThroughTheDaemonGetsTheInProcessAnswers() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 52)
        let daemon = try DaemonProcess(socketPath: dir.file("s"), arguments: ["--datastore", "code=\(ds.path)"], logPath: dir.file("log"))
        defer { daemon.terminate() }
        let contexts = sampleContexts(ds.documents, count: 12, vocabulary: testVocabulary, seed: 6)
        let lines = contexts.map { "{\"context\": [\($0.map(String.init).joined(separator: ","))]}" }
        try lines.joined(separator: "\n").write(toFile: dir.file("q.jsonl"), atomically: false, encoding: .utf8)
        let local = try run(["query", ds.path, "--queries", dir.file("q.jsonl"), "--json"])
        let remote = try run(["query", "--socket", dir.file("s"), "--datastore", "code", "--queries", dir.file("q.jsonl"), "--json"])
        #expect(local.0 == 0 && remote.0 == 0, "\(remote.1)")
        #expect(local.1 == remote.1)
        struct Answer: Decodable { var matchLength: Int, occurrences: Int, tokens: [UInt32], parents: [Int32], counts: [UInt32] }
        let answers = try remote.1.split(separator: "\n").map { try JSONDecoder().decode(Answer.self, from: Data($0.utf8)) }
        #expect(answers.count == contexts.count)
        for (answer, context) in zip(answers, contexts) {
            let expected = try ds.store.retrieve(context: context)
            #expect(answer.matchLength == expected.matchLength && answer.occurrences == expected.occurrences)
            #expect(answer.tokens == expected.tokens && answer.parents == expected.parents && answer.counts == expected.counts)
        }

        try "{\"context\": [1, 2]}\n{\"context\": [3, \(testVocabulary)]}\n".write(toFile: dir.file("bad.jsonl"), atomically: false, encoding: .utf8)
        let bad = try run(["query", "--socket", dir.file("s"), "--datastore", "code", "--queries", dir.file("bad.jsonl"), "--json"])
        #expect(bad.0 != 0 && bad.1.contains("bad.jsonl line 2"), "\(bad.1)")
    }
}

/// Runs `rasd-index` with `arguments`: exit status and standard output and error together.
private func run(_ arguments: [String]) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: rasdIndexExecutable())
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A value behind a lock, for test threads.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

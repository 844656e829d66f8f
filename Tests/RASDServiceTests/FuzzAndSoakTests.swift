import Foundation
import RASDDatastore
import RASDTestSupport
import RASDService
import RASDTrees
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Seconds from the environment (to run longer by hand), else the CI default.
private func duration(_ variable: String, default value: Double) -> Double {
    ProcessInfo.processInfo.environment[variable].flatMap(Double.init) ?? value
}

/// Reference answers computed in process, for checking the daemon's.
private struct References: Sendable {
    let contexts: [[UInt32]]
    let parameters: [RetrievalParameters]
    /// answers[datastore][parameter set][context]
    let answers: [[[CandidateTrie]]]

    init(_ stores: [TestDatastore], seed: UInt64) throws {
        let contexts = sampleContexts(stores[0].documents + stores[1].documents, count: 200, vocabulary: testVocabulary, seed: seed)
        let parameters = [
            RetrievalParameters(), RetrievalParameters(maxMatch: 6, minMatch: 1, continuationLength: 4, maxNodes: 10),
            RetrievalParameters(continuationLength: 24, maxNodes: 400),
        ]
        answers = try stores.map { s in try parameters.map { p in try contexts.map { try s.store.retrieve(context: $0, parameters: p) } } }
        self.contexts = contexts
        self.parameters = parameters
    }
}

/// A client that keeps asking good questions and checks every answer.
private final class WellBehavedClient: @unchecked Sendable {
    private let lock = NSLock()
    private var stop = false
    private(set) var answered = 0
    private(set) var wrong = 0
    private(set) var failures: [String] = []
    private let thread: Thread

    init(socketPath: String, references: References, names: [String]) {
        let box = Unchecked()
        thread = Thread {
            box.client?.run(socketPath: socketPath, references: references, names: names)
        }
        box.client = self
        thread.start()
    }

    private final class Unchecked: @unchecked Sendable { weak var client: WellBehavedClient? }

    private func run(socketPath: String, references: References, names: [String]) {
        do {
            let client = try RetrievalClient(socketPath: socketPath, timeout: 30)
            var i = 0
            while !(lock.withLock { stop }) {
                let d = i % 2, p = (i / 2) % references.parameters.count, c = (i / 6) % references.contexts.count
                let answer = try client.retrieve(datastore: names[d], context: references.contexts[c], parameters: references.parameters[p])
                lock.withLock {
                    answered += 1
                    if answer != references.answers[d][p][c] { wrong += 1 }
                }
                i += 1
            }
        } catch {
            lock.withLock { failures.append("\(error)") }
        }
    }

    func finish() -> (answered: Int, wrong: Int, failures: [String]) {
        lock.withLock { stop = true }
        while !thread.isFinished { usleep(5_000) }
        return lock.withLock { (answered, wrong, failures) }
    }
}

@Suite(.serialized) struct FuzzAndSoakTests {
    /// Random and mutated frames from a seed, for a bounded time, against a live daemon, while a
    /// well-behaved client on another connection checks every answer it gets.
    ///
    /// Reproduce a run with `RASD_FUZZ_SEED=<seed>`; run longer with `RASD_FUZZ_SECONDS`.
    @Test func fuzzedFramesNeverDisturbTheDaemonOrOtherClients() throws {
        let seconds = duration("RASD_FUZZ_SECONDS", default: 20)
        let seed = ProcessInfo.processInfo.environment["RASD_FUZZ_SEED"].flatMap(UInt64.init) ?? 0x5EED_F022
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let stores = [try TestDatastore(at: dir.file("a"), seed: 61), try TestDatastore(at: dir.file("b"), seed: 62)]
        let references = try References(stores, seed: 63)
        let daemon = try DaemonProcess(
            socketPath: dir.file("s"),
            arguments: ["--datastore", "a=\(stores[0].path)", "--datastore", "b=\(stores[1].path)", "--io-timeout", "0.5",
                        "--max-frame-bytes", "65536", "--max-batch", "64"],
            logPath: dir.file("log"))
        defer { daemon.terminate() }
        let good = WellBehavedClient(socketPath: dir.file("s"), references: references, names: ["a", "b"])

        // Valid requests of every type, to mutate.
        var templates: [[UInt8]] = [Frames.hello(), Frames.frame(.list, payload: []), Frames.frame(.stats, payload: [0]),
                                    Frames.frame(.stats, payload: [1]), Frames.frame(.reload, payload: [1, 0, 0x61])]
        for (i, context) in references.contexts.prefix(20).enumerated() {
            templates.append(Frames.retrieve(i % 2 == 0 ? "a" : "b", context, parameters: references.parameters[i % 3]))
        }
        var batch = WireWriter()
        RetrievalCodec.encodeBatchRequest(datastore: "a", contexts: Array(references.contexts.prefix(8)), parameters: RetrievalParameters(), into: &batch)
        templates.append(Frames.frame(.retrieveBatch, payload: batch.bytes))
        let w = SyntheticTreeWorkload(seed: 9, vocabularySize: 64, draftNodes: 20, retrievalNodes: 20)
        let fuse = TreeFuseRequest(w, rootTop: try TopTokens(tokens: [w.draftTokens[0], 3], probabilities: [0.6, 0.1]), pendingToken: 1)
        var fuseBytes = WireWriter()
        fuse.encode(into: &fuseBytes)
        templates.append(Frames.frame(.treeFuse, payload: fuseBytes.bytes))
        var greedy = AcceptGreedyRequest()
        greedy.tokens = [1, 5, 6, 7]
        greedy.parents = [-1, 0, 0, 1]
        greedy.targetArgmax = [5, 7, 2, 3]
        var greedyBytes = WireWriter()
        greedy.encode(into: &greedyBytes)
        templates.append(Frames.frame(.treeAcceptGreedy, payload: greedyBytes.bytes))
        var sampling = AcceptSamplingRequest()
        sampling.tokens = [1, 5, 6]
        sampling.parents = [-1, 0, 0]
        sampling.vocabularySize = 8
        sampling.sparseRows = (0..<3).map { _ in .init(tokens: [5, 6, 2], probabilities: [0.5, 0.3, 0.2]) }
        var samplingBytes = WireWriter()
        sampling.encode(into: &samplingBytes)
        templates.append(Frames.frame(.treeAcceptSampling, payload: samplingBytes.bytes))

        let deadline = Date().addingTimeInterval(seconds)
        var iterations = 0, replies = 0, badReplies: [String] = []
        var iterationSeed = seed
        while Date() < deadline {
            iterationSeed = seed &+ UInt64(iterations)
            var rng = Xoshiro256(seed: iterationSeed)
            func random(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }
            guard let raw = try? RawConnection(dir.file("s"), timeout: 2) else {
                badReplies.append("iteration seed \(iterationSeed): cannot connect")
                break
            }
            var bytes: [UInt8] = random(10) < 7 ? Frames.hello() : []
            for _ in 0..<(1 + random(6)) {
                var frame = templates[random(templates.count)]
                switch random(6) {
                case 0:  // random bytes
                    frame = (0..<random(200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                case 1:  // byte flips anywhere
                    for _ in 0..<(1 + random(4)) where !frame.isEmpty { frame[random(frame.count)] ^= UInt8(1 << random(8)) }
                case 2:  // random type, payload kept
                    let t = UInt16(truncatingIfNeeded: rng.next() % 3 == 0 ? rng.next() : UInt64(random(0x30)))
                    frame[4] = UInt8(t & 0xFF)
                    frame[5] = UInt8(t >> 8)
                case 3:  // a random length field (often larger than the bytes that follow)
                    let length = UInt32(truncatingIfNeeded: rng.next() % 2 == 0 ? rng.next() : UInt64(random(70_000)))
                    withUnsafeBytes(of: length.littleEndian) { for i in 0..<4 { frame[i] = $0[i] } }
                case 4:  // payload bytes overwritten, length kept
                    for _ in 0..<(1 + random(8)) where frame.count > 12 { frame[12 + random(frame.count - 12)] = UInt8(truncatingIfNeeded: rng.next()) }
                default:  // truncated
                    frame = Array(frame.prefix(random(frame.count)))
                }
                bytes += frame
            }
            raw.send(bytes)
            shutdown(raw.fd, Int32(SHUT_WR))  // the server sees the end after the last byte
            while let reply = raw.readFrame() {
                replies += 1
                if !(reply.header.type.isReply || reply.header.type == .error) {
                    badReplies.append("iteration seed \(iterationSeed): reply type \(reply.header.type)")
                }
                if let e = Frames.error(reply), !ServiceError.Code.all.contains(e.code) {
                    badReplies.append("iteration seed \(iterationSeed): unknown error code \(e.code.rawValue)")
                }
            }
            iterations += 1
            if !daemon.process.isRunning { break }
        }
        let result = good.finish()
        #expect(daemon.process.isRunning, "the daemon died at iteration seed \(iterationSeed); log: \(daemon.log().suffix(2000))")
        #expect(badReplies.isEmpty, "\(badReplies.prefix(5))")
        #expect(result.failures.isEmpty, "\(result.failures)")
        #expect(result.wrong == 0)
        #expect(result.answered > 100)
        #expect(iterations > 100 && replies > iterations)
        // Still serving new clients, and the fuzzing was seen as errors, not as crashes.
        let stats = try RetrievalClient(socketPath: dir.file("s")).stats()
        #expect(stats.errors.values.reduce(0, +) > iterations / 4)
        #expect(stats.connections.open == 1)
        print("fuzz: \(iterations) connections, \(replies) replies, \(result.answered) checked answers, errors \(stats.errors.sorted { $0.key < $1.key })")
    }

    /// Many concurrent clients with a mix of good and bad requests for a bounded time: every good
    /// answer equals in-process retrieval, every bad request gets its error, nothing is lost.
    @Test func soakManyClientsMixedRequestsNothingLostOrWrong() throws {
        let seconds = duration("RASD_SOAK_SECONDS", default: 10)
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let stores = [try TestDatastore(at: dir.file("a"), seed: 71), try TestDatastore(at: dir.file("b"), seed: 72)]
        let references = try References(stores, seed: 73)
        let daemon = try DaemonProcess(
            socketPath: dir.file("s"),
            arguments: ["--datastore", "a=\(stores[0].path)", "--datastore", "b=\(stores[1].path)", "--io-timeout", "2"],
            logPath: dir.file("log"))
        defer { daemon.terminate() }
        let names = ["a", "b"]
        let trees = try (UInt64(1)...8).map { seed -> (TreeFuseRequest, FusedTreeReply) in
            let w = SyntheticTreeWorkload(seed: seed, vocabularySize: 64, draftNodes: 40, retrievalNodes: 40)
            let top = try TopTokens(distribution: w.rootDistribution, k: 6)
            let request = TreeFuseRequest(w, rootTop: top, pendingToken: w.pendingToken)
            let fused = try TokenTree.fuse(draft: w.draft, retrieval: TokenTree.prune(retrieval: TokenTree(retrieval: w.retrieval), rootTop: top), budget: 64)
            var expected = FusedTreeReply()
            expected.tokens = fused.tokens
            expected.parents = fused.parents
            expected.depths = fused.depths
            expected.scores = fused.scores
            expected.sources = fused.sources
            expected.layout = LayoutRows(fused.layout(pendingToken: w.pendingToken))
            return (request, expected)
        }

        final class Totals: @unchecked Sendable {
            let lock = NSLock()
            var requests = 0, retrievals = 0, wrong = 0, unexpected: [String] = []
            func add(requests r: Int, retrievals n: Int, wrong w: Int, unexpected u: [String]) {
                lock.withLock {
                    requests += r
                    retrievals += n
                    wrong += w
                    unexpected += u
                }
            }
        }
        let totals = Totals()
        let socketPath = dir.file("s")
        let deadline = Date().addingTimeInterval(seconds)
        let threads = (0..<16).map { index in
            Thread {
                var rng = Xoshiro256(seed: UInt64(index) &* 7919)
                func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
                var requests = 0, retrievals = 0, wrong = 0, unexpected: [String] = []
                func expectError(_ code: ServiceError.Code, _ body: () throws -> Void) {
                    requests += 1
                    let e = serviceError(body)
                    if e?.code != code { unexpected.append("expected \(code), got \(String(describing: e))") }
                }
                do {
                    var client = try RetrievalClient(socketPath: socketPath, clientName: "soak \(index)")
                    var answer = CandidateTrie.empty
                    while Date() < deadline {
                        let d = random(2), p = random(references.parameters.count)
                        let action = random(100)
                        switch action {
                        case 0..<40:
                            let c = random(references.contexts.count)
                            try client.retrieve(datastore: names[d], context: references.contexts[c], parameters: references.parameters[p], into: &answer)
                            requests += 1
                            retrievals += 1
                            if answer != references.answers[d][p][c] { wrong += 1 }
                        case 40..<55:
                            let picks = (0..<(1 + random(20))).map { _ in random(references.contexts.count) }
                            let answers = try client.retrieveBatch(datastore: names[d], contexts: picks.map { references.contexts[$0] }, parameters: references.parameters[p])
                            requests += 1
                            retrievals += picks.count
                            if answers != picks.map({ references.answers[d][p][$0] }) { wrong += 1 }
                        case 55..<70:
                            let picks = (0..<(2 + random(30))).map { _ in random(references.contexts.count) }
                            for c in picks { try client.sendRetrieve(datastore: names[d], context: references.contexts[c], parameters: references.parameters[p]) }
                            for c in picks {
                                try client.receiveRetrieve(into: &answer)
                                if answer != references.answers[d][p][c] { wrong += 1 }
                            }
                            requests += picks.count
                            retrievals += picks.count
                        case 70..<75:
                            expectError(.unknownDatastore) { _ = try client.retrieve(datastore: "c", context: [1, 2]) }
                        case 75..<80:
                            expectError(.tokenOutOfRange) { _ = try client.retrieve(datastore: names[d], context: [1, UInt32(testVocabulary + random(1000))]) }
                        case 80..<85:
                            expectError(.invalidParameters) { _ = try client.retrieve(datastore: names[d], context: [1], parameters: RetrievalParameters(maxNodes: 5000)) }
                        case 85..<88:
                            requests += 1
                            try client.sendRaw(Frames.frame(MessageType(rawValue: 0x0077), id: 999, payload: [1, 2, 3]))
                            let frame = try client.receiveRawFrame()
                            if Frames.error(frame)?.code != .unknownMessageType || frame.header.requestID != 999 {
                                unexpected.append("unknown type: \(frame.header)")
                            }
                        case 88..<93:
                            let (request, expected) = trees[random(trees.count)]
                            requests += 1
                            if try client.fuse(request) != expected { wrong += 1 }
                        case 93..<95:
                            requests += 1
                            _ = try client.stats()
                        case 95..<98:
                            client.close()
                            client = try RetrievalClient(socketPath: socketPath, clientName: "soak \(index)")
                        default:
                            // A misbehaving neighbour on its own connection: garbage, then gone.
                            let raw = try RawConnection(socketPath)
                            raw.send((0..<random(100)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                        }
                    }
                } catch {
                    unexpected.append("client \(index): \(error)")
                }
                totals.add(requests: requests, retrievals: retrievals, wrong: wrong, unexpected: unexpected)
            }
        }
        for t in threads { t.start() }
        while threads.contains(where: { !$0.isFinished }) { usleep(20_000) }

        #expect(totals.wrong == 0)
        #expect(totals.unexpected.isEmpty, "\(totals.unexpected.prefix(5))")
        #expect(totals.requests > 1000)
        // Nothing lost: the daemon answered exactly the retrievals the clients received.
        let stats = try RetrievalClient(socketPath: socketPath).stats()
        #expect(stats.retrievals == totals.retrievals)
        #expect(daemon.process.isRunning)
        print("soak: \(totals.requests) requests, \(totals.retrievals) retrievals checked, server p99 \(stats.requests["retrieve"]?.latencyMicroseconds.p99 ?? 0) µs")
    }
}

extension NSLock {
    fileprivate func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

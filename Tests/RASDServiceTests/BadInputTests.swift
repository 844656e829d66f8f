import Foundation
import RASDDatastore
import RASDTestSupport
import RASDService
import RASDTrees
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every kind of bad input gets an error reply or a clean close, and never disturbs the other
/// clients.
@Suite(.serialized) struct ServiceBadInputTests {
    /// A server on a small datastore, a reference client, and a check that the reference still
    /// gets exact answers.
    struct Fixture {
        let dir: TemporaryDirectory
        let ds: TestDatastore
        let server: InProcessServer
        let contexts: [[UInt32]]

        init(configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
            dir = try TemporaryDirectory()
            ds = try TestDatastore(at: dir.file("ds"), seed: 21)
            server = try InProcessServer(socketPath: dir.file("s"), datastores: [DatastoreSpec(name: "ds", path: ds.path)], configure: configure)
            contexts = sampleContexts(ds.documents, count: 20, vocabulary: testVocabulary, seed: 22)
        }

        /// Exact answers on `client` (or a new connection).
        func expectHealthy(_ client: RetrievalClient? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let c = try client ?? server.client()
            for context in contexts {
                #expect(try c.retrieve(datastore: "ds", context: context) == (try ds.store.retrieve(context: context)), sourceLocation: sourceLocation)
            }
        }

        func stop() {
            server.stop()
            dir.cleanup()
        }
    }

    @Test func requestLevelErrorsKeepTheConnectionOpen() throws {
        let f = try Fixture()
        defer { f.stop() }
        let client = try f.server.client()

        let unknown = serviceError { _ = try client.retrieve(datastore: "docs", context: [1, 2]) }
        #expect(unknown?.code == .unknownDatastore)
        #expect(unknown?.message.contains("\"docs\"") == true && unknown?.message.contains("open: ds") == true)

        let outOfRange = serviceError { _ = try client.retrieve(datastore: "ds", context: [1, 2, UInt32(testVocabulary), 4]) }
        #expect(outOfRange?.code == .tokenOutOfRange)
        #expect(outOfRange?.message.contains("\(testVocabulary)") == true && outOfRange?.message.contains("token 2") == true)

        for bad in [RetrievalParameters(minMatch: 0), RetrievalParameters(maxMatch: 300), RetrievalParameters(maxMatch: 3, minMatch: 4),
                    RetrievalParameters(continuationLength: 0), RetrievalParameters(maxNodes: 5000), RetrievalParameters(maxNodes: 70_000)] {
            let e = serviceError { _ = try client.retrieve(datastore: "ds", context: [1, 2], parameters: bad) }
            #expect(e?.code == .invalidParameters, "\(bad)")
        }

        let batch = serviceError { _ = try client.retrieveBatch(datastore: "ds", contexts: [[1, 2], [3, 99_999], [4]]) }
        #expect(batch?.code == .tokenOutOfRange && batch?.message.contains("context 1") == true)

        let reload = serviceError { _ = try client.reload(datastore: "nope") }
        #expect(reload?.code == .unknownDatastore)

        try f.expectHealthy(client)
    }

    @Test func malformedPayloadsAndUnknownTypesAreRequestErrors() throws {
        let f = try Fixture()
        defer { f.stop() }
        let raw = try RawConnection(f.server.socketPath)
        raw.send(Frames.hello())
        #expect(raw.readFrame()?.header.type == MessageType.hello.reply)

        func expectError(_ frame: [UInt8], _ code: ServiceError.Code, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(raw.send(frame), sourceLocation: sourceLocation)
            let reply = raw.readFrame()
            let error = reply.flatMap(Frames.error)
            #expect(error?.code == code, "\(what): \(String(describing: error))", sourceLocation: sourceLocation)
            #expect(reply?.header.flags.contains(.closing) == false, sourceLocation: sourceLocation)
            #expect(reply?.header.requestID == 77, sourceLocation: sourceLocation)
        }
        let good = Frames.retrieve("ds", [1, 2, 3], id: 77)
        let goodPayload = Array(good[12...])
        expectError(Frames.frame(MessageType(rawValue: 0x0042), id: 77, payload: [1, 2, 3]), .unknownMessageType, "unknown type")
        expectError(Frames.frame(.retrieve, id: 77, payload: Array(goodPayload.dropLast(2))), .malformedRequest, "truncated context")
        expectError(Frames.frame(.retrieve, id: 77, payload: goodPayload + [0]), .malformedRequest, "trailing byte")
        expectError(Frames.frame(.retrieve, id: 77, payload: []), .malformedRequest, "empty payload")
        // A context count far beyond the payload must not make the server allocate or read past it.
        var huge = goodPayload
        huge.replaceSubrange(12..<16, with: [0xFF, 0xFF, 0xFF, 0x7F])
        expectError(Frames.frame(.retrieve, id: 77, payload: huge), .malformedRequest, "huge count")
        // A datastore name that is not UTF-8.
        expectError(Frames.frame(.retrieve, id: 77, payload: [2, 0, 0xC3, 0x28] + Array(goodPayload[4...])), .malformedRequest, "bad UTF-8")
        expectError(Frames.frame(.stats, id: 77, payload: [9]), .invalidParameters, "stats format")
        expectError(Frames.retrieve("ds", [1, 2], parameters: RetrievalParameters(maxNodes: 5000), id: 77), .invalidParameters, "maxNodes")
        expectError(Frames.retrieve("ds", [1, 2], parameters: RetrievalParameters(minMatch: 0), id: 77), .invalidParameters, "minMatch")
        expectError(Frames.frame(.list, id: 77, payload: [1]), .malformedRequest, "list with payload")
        // A batch over the limit.
        var w = WireWriter()
        w.appendShortString("ds")
        RetrievalCodec.encode(RetrievalParameters(), into: &w)
        w.append(UInt32(5000))
        expectError(Frames.frame(.retrieveBatch, id: 77, payload: w.bytes + [UInt8](repeating: 0, count: 5000 * 4)), .invalidParameters, "batch too large")

        // The same connection still answers correctly.
        #expect(raw.send(good))
        let reply = try #require(raw.readFrame())
        #expect(reply.header.type == MessageType.retrieve.reply && reply.header.requestID == 77)
        let answer = try reply.payload.withUnsafeBytes { bytes in
            var r = WireReader(bytes, message: "reply")
            var t = CandidateTrie.empty
            try RetrievalCodec.decode(&r, into: &t)
            return t
        }
        #expect(answer == (try f.ds.store.retrieve(context: [1, 2, 3])))
    }

    @Test func connectionFatalErrorsReplyThenClose() throws {
        let f = try Fixture { $0.maxFrameBytes = 8192 }
        defer { f.stop() }
        let reference = try f.server.client()

        func expectFatal(_ frames: [[UInt8]], _ code: ServiceError.Code, helloFirst: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let raw = try RawConnection(f.server.socketPath)
            if helloFirst {
                raw.send(Frames.hello())
                #expect(raw.readFrame()?.header.type == MessageType.hello.reply, sourceLocation: sourceLocation)
            }
            for frame in frames { raw.send(frame) }
            let reply = raw.readFrame()
            #expect(reply.flatMap(Frames.error)?.code == code, sourceLocation: sourceLocation)
            #expect(reply?.header.flags.contains(.closing) == true, sourceLocation: sourceLocation)
            #expect(raw.isClosedByPeer(), sourceLocation: sourceLocation)
        }
        // Oversized: refused from the header alone, before the payload arrives.
        try expectFatal([Frames.frame(.retrieve, payload: []).enumerated().map { $0.offset == 1 ? 0x40 : $0.element }], .frameTooLarge)
        try expectFatal([Frames.frame(.retrieve, payload: [UInt8](repeating: 0, count: 9000))], .frameTooLarge)
        // No HELLO first, a bad magic, another major version.
        try expectFatal([Frames.retrieve("ds", [1, 2])], .handshakeRequired, helloFirst: false)
        try expectFatal([Frames.frame(.hello, payload: Array("HTTP/1.1".utf8))], .handshakeRequired, helloFirst: false)
        try expectFatal([Frames.hello(major: 2)], .unsupportedVersion, helloFirst: false)
        // A reply type sent as a request; request flags set.
        try expectFatal([Frames.frame(MessageType.retrieve.reply, payload: [])], .malformedFrame)
        try expectFatal([Frames.frame(.list, flags: 4, payload: [])], .malformedFrame)

        // The client library reports the version mismatch clearly.
        let raw = try RawConnection(f.server.socketPath)
        raw.send(Frames.hello(major: 9, minor: 3))
        let message = raw.readFrame().flatMap(Frames.error)?.message ?? ""
        #expect(message.contains("9.3") && message.contains("1.0"))

        try f.expectHealthy(reference)
        #expect(try reference.stats().errors["frame_too_large"] == 2)
    }

    /// The I/O timeout bounds the age of one unfinished frame, not of a connection that always
    /// has one: a client whose sends keep ending part-way through a frame, each frame completed
    /// promptly, is served for as long as it keeps going (four timeouts here).
    @Test func aClientThatKeepsFramesMovingIsNeverDropped() throws {
        let f = try Fixture { $0.ioTimeout = 0.5 }
        defer { f.stop() }
        let raw = try RawConnection(f.server.socketPath, timeout: 5)
        raw.send(Frames.hello())
        _ = raw.readFrame()
        let frame = Frames.retrieve("ds", f.contexts[0])
        let frames = 140
        let stream = [UInt8]((0..<frames).map { _ in frame }.joined())
        // Half a frame, then a frame's worth at a time: every send but the last ends mid-frame.
        let cuts = [0] + Array(stride(from: frame.count / 2, to: stream.count, by: frame.count)) + [stream.count]
        let sender = Thread {
            for (start, end) in zip(cuts, cuts.dropFirst()) {
                if !raw.send(Array(stream[start..<end])) { return }
                usleep(20_000)
            }
        }
        sender.start()
        var replies = 0
        while replies < frames, let reply = raw.readFrame(), reply.header.type == MessageType.retrieve.reply { replies += 1 }
        #expect(replies == frames)
        let reference = try f.server.client()
        #expect((try reference.stats().errors["timeouts"] ?? 0) == 0)
    }

    @Test func clientsThatVanishMidFrameOrNeverReadAreDropped() throws {
        let f = try Fixture { $0.ioTimeout = 0.5 }
        defer { f.stop() }
        let reference = try f.server.client()

        // Disconnect in the middle of a frame (header only, then half a payload).
        for cut in [5, 12, 20] {
            let raw = try RawConnection(f.server.socketPath)
            raw.send(Frames.hello())
            _ = raw.readFrame()
            raw.send(Array(Frames.retrieve("ds", [1, 2, 3, 4, 5]).prefix(cut)))
        }
        // Stall in the middle of a frame: dropped after the I/O timeout.
        let stalled = try RawConnection(f.server.socketPath, timeout: 5)
        stalled.send(Frames.hello())
        _ = stalled.readFrame()
        stalled.send(Array(Frames.retrieve("ds", [1, 2, 3]).prefix(15)))
        let start = Date()
        #expect(stalled.isClosedByPeer())
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.4 && waited < 4, "dropped after \(waited) s")

        // Trickle a frame byte by byte, each byte well within the timeout: dropped all the same.
        let trickle = try RawConnection(f.server.socketPath, timeout: 5)
        trickle.send(Frames.hello())
        _ = trickle.readFrame()
        let slowStart = Date()
        for byte in Frames.retrieve("ds", [UInt32](repeating: 1, count: 20)) {
            if !trickle.send([byte]) { break }
            usleep(100_000)
            if Date().timeIntervalSince(slowStart) > 3 { break }
        }
        #expect(trickle.isClosedByPeer())
        #expect(Date().timeIntervalSince(slowStart) < 2.5)

        // Never read the replies: pipeline far more than the socket buffers hold, read nothing.
        let greedy = try RawConnection(f.server.socketPath, timeout: 5)
        greedy.send(Frames.hello())
        _ = greedy.readFrame()
        let request = Frames.retrieve("ds", f.contexts[3], parameters: RetrievalParameters(continuationLength: 32, maxNodes: 2000))
        let sender = Thread {
            for _ in 0..<20_000 { if !greedy.send(request) { return } }
        }
        sender.start()
        // Meanwhile the reference client is served as usual.
        for _ in 0..<5 { try f.expectHealthy(reference) }
        // The silent reader is dropped after the timeout.
        let deadline = Date().addingTimeInterval(10)
        while (try reference.stats().errors["timeouts"] ?? 0) < 3 && Date() < deadline { usleep(50_000) }
        #expect(try reference.stats().errors["timeouts"] == 3)
        try f.expectHealthy(reference)
        // Only the reference connection is left.
        #expect(try reference.stats().connections.open == 1)
    }

    @Test func connectionsBeyondTheLimitAreRefusedWithAReason() throws {
        let f = try Fixture { $0.maxConnections = 2 }
        defer { f.stop() }
        let a = try f.server.client()
        let b = try f.server.client()
        let refused = serviceError { _ = try f.server.client() }
        #expect(refused?.code == .tooManyConnections)
        #expect(refused?.message.contains("2 connections") == true)
        try f.expectHealthy(a)
        try f.expectHealthy(b)
        b.close()
        // A slot frees when a client leaves.
        let deadline = Date().addingTimeInterval(5)
        var c: RetrievalClient?
        while c == nil && Date() < deadline {
            c = try? f.server.client()
            if c == nil { usleep(20_000) }
        }
        guard let c else {
            Issue.record("no connection slot freed within 5 s of a client leaving")
            return
        }
        try f.expectHealthy(c)
        #expect(try a.stats().connections.rejected >= 1)
    }

    @Test func badTreeInputsAreRequestErrors() throws {
        let f = try Fixture()
        defer { f.stop() }
        let client = try f.server.client()
        let w = SyntheticTreeWorkload(seed: 3, vocabularySize: 64)
        var request = TreeFuseRequest(w, rootTop: try TopTokens(tokens: [w.draftTokens[0]], probabilities: [0.5]), pendingToken: w.pendingToken)
        request.vocabularySize = 64
        let good = try client.fuse(request)

        func expectError(_ change: (inout TreeFuseRequest) -> Void, _ code: ServiceError.Code, sourceLocation: SourceLocation = #_sourceLocation) {
            var r = request
            change(&r)
            #expect(serviceError { _ = try client.fuse(r) }?.code == code, sourceLocation: sourceLocation)
        }
        expectError({ $0.draftParents[1] = 5 }, .invalidTree)  // parent after child
        expectError({ $0.draftProbabilities[0] = 1.5 }, .invalidTree)
        expectError({ $0.draftProbabilities[0] = .nan }, .invalidTree)
        expectError({ $0.draftTokens[2] = 64 }, .invalidTree)
        expectError({ $0.rootTopProbabilities = [-1] }, .invalidTree)
        expectError({ $0.retrievals[0].trie.counts[0] = 0 }, .invalidTree)
        expectError({ $0.retrievals[0].trie.parents[0] = 3 }, .malformedRequest)
        expectError({ $0.retrievals[0].source = .draft }, .invalidTree)
        expectError({ $0.budget = 1 << 20 }, .invalidParameters)

        var greedy = AcceptGreedyRequest()
        greedy.tokens = good.layout.tokens
        greedy.parents = good.layout.parents
        greedy.targetArgmax = [UInt32](repeating: 0, count: good.layout.count)
        _ = try client.acceptGreedy(greedy)
        var reordered = greedy
        reordered.parents[reordered.parents.count - 1] = 0  // the last row moved below the pending token
        #expect(serviceError { _ = try client.acceptGreedy(reordered) }?.code == .invalidTree)
        var short = greedy
        short.targetArgmax.removeLast()
        #expect(serviceError { _ = try client.acceptGreedy(short) }?.code == .invalidTree)
        var noPending = greedy
        noPending.parents[0] = 0
        #expect(serviceError { _ = try client.acceptGreedy(noPending) }?.code == .invalidTree)

        var sampling = AcceptSamplingRequest()
        sampling.tokens = good.layout.tokens
        sampling.parents = good.layout.parents
        sampling.vocabularySize = 64
        sampling.denseRows = [Float](repeating: -1, count: good.layout.count * 64)
        #expect(serviceError { _ = try client.acceptSampling(sampling) }?.code == .invalidTree)
        sampling.denseRows = [Float](repeating: 1, count: good.layout.count * 64 - 1)
        #expect(serviceError { _ = try client.acceptSampling(sampling) }?.code == .malformedRequest)
        sampling.sparseRows = (0..<good.layout.count).map { _ in .init(tokens: [1, 1], probabilities: [0.5, 0.5]) }
        #expect(serviceError { _ = try client.acceptSampling(sampling) }?.code == .invalidTree)
        sampling.sparseRows = (0..<good.layout.count).map { _ in .init(tokens: [70], probabilities: [0.5]) }
        #expect(serviceError { _ = try client.acceptSampling(sampling) }?.code == .invalidTree)

        try f.expectHealthy(client)
    }

    @Test func requestsOverTheLimitAreCaughtByTheClient() throws {
        let f = try Fixture { $0.maxFrameBytes = 4096 }
        defer { f.stop() }
        let client = try f.server.client()
        #expect(client.server.maxFrameBytes == 4096)
        let big = [UInt32](repeating: 1, count: 2000)
        #expect(serviceError { _ = try client.retrieve(datastore: "ds", context: big) }?.code == .requestTooLarge)
        try f.expectHealthy(client)  // nothing was sent, the connection is fine
    }
}

import Foundation
import Logging
import RASDDatastore
import RASDTestSupport
import RASDService
import RASDTrees
import Testing

/// Answers through the daemon equal in-process answers, for every request type.
@Suite(.serialized) struct RoundTripTests {
    @Test func retrievalThroughTheDaemonEqualsInProcessRetrieval() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 11)
        let server = try InProcessServer(socketPath: dir.file("s"), datastores: [DatastoreSpec(name: "ds", path: ds.path)])
        defer { server.stop() }
        let client = try server.client()
        #expect(client.server.majorVersion == ServiceProtocol.majorVersion)
        #expect(client.server.maxFrameBytes == ServiceProtocol.defaultMaxFrameBytes)

        let contexts = sampleContexts(ds.documents, count: 300, vocabulary: testVocabulary, seed: 5)
        let parameterSets = [
            RetrievalParameters(),
            RetrievalParameters(maxMatch: 4, minMatch: 1, continuationLength: 3, maxNodes: 7),
            RetrievalParameters(maxMatch: 32, minMatch: 3, continuationLength: 16, maxNodes: 200),
            RetrievalParameters(maxNodes: 0),
        ]
        var matched = 0
        for (i, context) in contexts.enumerated() {
            let parameters = parameterSets[i % parameterSets.count]
            let expected = try ds.store.retrieve(context: context, parameters: parameters)
            let got = try client.retrieve(datastore: "ds", context: context, parameters: parameters)
            #expect(got == expected, "context \(context) parameters \(parameters)")
            if expected.count > 0 { matched += 1 }
        }
        #expect(matched > 100)  // the comparison covered real answers, not only empty ones

        // Batch: one request, every answer in order.
        let batch = try client.retrieveBatch(datastore: "ds", contexts: contexts)
        #expect(batch == (try contexts.map { try ds.store.retrieve(context: $0) }))
        #expect(try client.retrieveBatch(datastore: "ds", contexts: []).isEmpty)

        // Pipelined: many requests queued, then all answers read back in order.
        for context in contexts { try client.sendRetrieve(datastore: "ds", context: context) }
        #expect(client.pendingReplies == contexts.count)
        var answer = CandidateTrie.empty
        for context in contexts {
            try client.receiveRetrieve(into: &answer)
            #expect(answer == (try ds.store.retrieve(context: context)))
        }
        #expect(client.pendingReplies == 0)
    }

    @Test func longPipelinesDoNotDeadlock() throws {
        // More replies in flight than the socket buffers hold: the client must read while sending.
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 12)
        let server = try InProcessServer(socketPath: dir.file("s"), datastores: [DatastoreSpec(name: "ds", path: ds.path)])
        defer { server.stop() }
        let client = try server.client(timeout: 20)
        let contexts = sampleContexts(ds.documents, count: 200, vocabulary: testVocabulary, seed: 6)
        let parameters = RetrievalParameters(continuationLength: 32, maxNodes: 1000)
        let rounds = 40  // 8,000 requests, several MB of replies
        for _ in 0..<rounds {
            for context in contexts { try client.sendRetrieve(datastore: "ds", context: context, parameters: parameters) }
        }
        try client.flush()
        var answer = CandidateTrie.empty
        let expected = try contexts.map { try ds.store.retrieve(context: $0, parameters: parameters) }
        var wrong = 0
        for _ in 0..<rounds {
            for e in expected {
                try client.receiveRetrieve(into: &answer)
                if answer != e { wrong += 1 }
            }
        }
        #expect(wrong == 0)
    }

    /// Two names for one directory share one open datastore (LMDB forbids opening an
    /// environment twice in a process), at start and after each name is reloaded on its own.
    @Test func namesForTheSameFilesShareOneOpenDatastore() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let a = try TestDatastore(at: dir.file("a"), seed: 1)
        let registry = try DatastoreRegistry(
            specs: [DatastoreSpec(name: "alpha", path: a.path), DatastoreSpec(name: "alias", path: a.path)],
            verification: .checksums, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        func shared() throws -> Bool {
            let alpha = try #require(registry.entry("alpha")), alias = try #require(registry.entry("alias"))
            return alpha.datastore === alias.datastore
        }
        #expect(try shared())
        _ = try TestDatastore(at: a.path, seed: 2, force: true)
        #expect(try registry.reload(name: "alias").map(\.status) == [.reloaded])
        #expect(try !shared())  // alpha still serves the previous version
        #expect(try registry.reload(name: "alpha").map(\.status) == [.reloaded])
        #expect(try shared())
    }

    @Test func severalDatastoresAreChosenByName() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let a = try TestDatastore(at: dir.file("a"), seed: 1)
        let b = try TestDatastore(at: dir.file("b"), seed: 2)
        let server = try InProcessServer(
            socketPath: dir.file("s"),
            datastores: [DatastoreSpec(name: "alpha", path: a.path), DatastoreSpec(name: "beta", path: b.path),
                         DatastoreSpec(name: "alias", path: a.path)])
        defer { server.stop() }
        let client = try server.client()
        let list = try client.datastores()
        #expect(list.map(\.name) == ["alpha", "beta", "alias"])
        #expect(list[0].tokens == a.documents.reduce(0) { $0 + $1.count })
        #expect(list[0].vocabularySize == testVocabulary)
        var differing = 0
        for context in sampleContexts(a.documents, count: 100, vocabulary: testVocabulary, seed: 3) {
            let fromA = try client.retrieve(datastore: "alpha", context: context)
            let fromB = try client.retrieve(datastore: "beta", context: context)
            #expect(fromA == (try a.store.retrieve(context: context)))
            #expect(fromB == (try b.store.retrieve(context: context)))
            #expect(try client.retrieve(datastore: "alias", context: context) == fromA)
            if fromA != fromB { differing += 1 }
        }
        #expect(differing > 10)
        // Two names for one directory share one mapping.
        #expect(try client.stats().memory.mappedDatastoreBytes == list[0].bytesOnDisk + list[1].bytesOnDisk)
    }

    @Test func statsCountRequestsErrorsAndDatastores() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 13)
        let server = try InProcessServer(socketPath: dir.file("s"), datastores: [DatastoreSpec(name: "ds", path: ds.path)])
        defer { server.stop() }
        let client = try server.client()
        let contexts = sampleContexts(ds.documents, count: 50, vocabulary: testVocabulary, seed: 4)
        for c in contexts { _ = try client.retrieve(datastore: "ds", context: c) }
        _ = try client.retrieveBatch(datastore: "ds", contexts: Array(contexts.prefix(10)))
        for _ in 0..<3 { _ = serviceError { _ = try client.retrieve(datastore: "nope", context: [1]) } }
        _ = serviceError { _ = try client.retrieve(datastore: "ds", context: [UInt32(testVocabulary)]) }

        let stats = try client.stats()
        #expect(stats.requests["retrieve"]?.count == 54)
        #expect(stats.requests["retrieve"]?.errors == 4)
        #expect(stats.requests["retrieve_batch"]?.count == 1)
        #expect(stats.retrievals == 60)
        #expect(stats.errors["unknown_datastore"] == 3)
        #expect(stats.errors["token_out_of_range"] == 1)
        #expect(stats.connections.open == 1)
        #expect(stats.datastores.count == 1 && stats.datastores[0].name == "ds" && stats.datastores[0].generation == 1)
        let latency = try #require(stats.requests["retrieve"]?.latencyMicroseconds)
        #expect(latency.p50 > 0 && latency.p50 <= latency.p90 && latency.p90 <= latency.p99 && latency.p99 <= latency.max)
        #expect(stats.memory.residentBytes > 0 && stats.memory.mappedDatastoreBytes == stats.datastores[0].bytesOnDisk)
        #expect(stats.pid == Int(ProcessInfo.processInfo.processIdentifier))

        let text = try client.statsText(format: .prometheus)
        #expect(text.contains("rasd_requests_total{type=\"retrieve\"} 54\n"))
        #expect(text.contains("rasd_errors_total{code=\"unknown_datastore\"} 3\n"))
        #expect(text.contains("rasd_datastore_tokens{datastore=\"ds\"} \(stats.datastores[0].tokens)\n"))
        #expect(text.contains("# TYPE rasd_request_duration_seconds summary"))
        // Every sample line is `name{labels} value` with a numeric value.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(Double(line.split(separator: " ").last ?? "") != nil, "\(line)")
        }

        // Closed connections keep counting.
        client.close()
        let later = try server.client().stats()
        #expect(later.requests["retrieve"]?.count == 54)
        #expect(later.connections.accepted == 2)
    }

    @Test func treeOperationsThroughTheDaemonEqualTheLibrary() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let ds = try TestDatastore(at: dir.file("ds"), seed: 14)
        let server = try InProcessServer(socketPath: dir.file("s"), datastores: [DatastoreSpec(name: "ds", path: ds.path)])
        defer { server.stop() }
        let client = try server.client()
        var workspace = TreeWorkspace()
        let vocabulary = 64
        for seed in UInt64(1)...40 {
            let w = SyntheticTreeWorkload(seed: seed, vocabularySize: vocabulary, draftNodes: Int(seed % 30) + 1, retrievalNodes: 40)
            let k = Int(seed % 6) + 2
            let top = try TopTokens(distribution: w.rootDistribution, k: k)
            var second = w.retrieval  // a context trie: the first one cut short
            let keep = second.count / 2
            second.tokens.removeLast(second.count - keep)
            second.parents.removeLast(second.parents.count - keep)
            second.counts.removeLast(second.counts.count - keep)
            let budget = Int(seed % 50) + 5
            let pending: UInt32? = seed % 4 == 0 ? nil : w.pendingToken

            // The library, step by step.
            let draft = try TokenTree(draftTokens: w.draftTokens, parents: w.draftParents, probabilities: w.draftProbabilities)
            var fused = TokenTree(), pruned = TokenTree(), layout = TreeLayout()
            try workspace.startFusion(with: draft)
            for (trie, source) in [(w.retrieval, TokenSources.datastore), (second, .context)] {
                workspace.prune(retrieval: try TokenTree(retrieval: trie, source: source), rootTop: top, into: &pruned)
                try workspace.addToFusion(pruned)
            }
            try workspace.finishFusion(budget: budget, into: &fused)
            workspace.layout(fused, pendingToken: pending, into: &layout)

            // The daemon.
            var request = TreeFuseRequest(w, rootTop: top, pendingToken: pending, budget: budget)
            request.retrievals.append(RetrievalInput(trie: second, source: .context))
            request.vocabularySize = vocabulary
            let reply = try client.fuse(request)
            #expect(reply.tokens == fused.tokens && reply.parents == fused.parents && reply.depths == fused.depths)
            #expect(reply.scores == fused.scores && reply.sources == fused.sources)
            #expect(reply.layout == LayoutRows(layout))
            #expect(fused.count > 0)

            // Greedy acceptance against a random oracle that often agrees with the tree.
            var rng = Xoshiro256(seed: seed)
            let argmax: [UInt32] = (0..<layout.count).map { row in
                let children = layout.children(of: row)
                if !children.isEmpty && rng.next() % 4 != 0 {
                    return layout.tokens[children.lowerBound + Int(rng.next() % UInt64(children.count))]
                }
                return UInt32(rng.next() % UInt64(vocabulary))
            }
            let rootArgmax = layout.topLevelCount > 0 ? layout.tokens[0] : 7
            let expected = try TreeVerification.acceptGreedy(tree: layout, targetArgmax: argmax, rootArgmax: rootArgmax)
            var greedy = AcceptGreedyRequest()
            greedy.hasPendingToken = reply.layout.hasPendingToken
            greedy.tokens = reply.layout.tokens
            greedy.parents = reply.layout.parents
            greedy.targetArgmax = argmax
            greedy.rootArgmax = rootArgmax
            #expect(try client.acceptGreedy(greedy) == AcceptanceReply(expected))

            // Sampling acceptance: dense rows, and the same rows sparse, give the library's result.
            let rows = layout.count + (pending == nil ? 1 : 0)
            var dense = [Float](repeating: 0, count: rows * vocabulary)
            var sparse: [AcceptSamplingRequest.SparseRow] = []
            for r in 0..<rows {
                var tokens: [UInt32] = [], probabilities: [Float] = []
                for t in 0..<vocabulary where rng.next() % 3 == 0 {
                    let p = Float(rng.next() % 1000 + 1) / 1000
                    dense[r * vocabulary + t] = p
                    tokens.append(UInt32(t))
                    probabilities.append(p)
                }
                // Unsorted on the wire: order within a sparse row must not matter.
                sparse.append(AcceptSamplingRequest.SparseRow(tokens: tokens.reversed(), probabilities: probabilities.reversed()))
            }
            var generator = Xoshiro256(seed: seed * 31)
            let root = pending == nil ? Array(dense[0..<vocabulary]) : nil
            let sampled = try TreeVerification.acceptSampling(
                tree: layout, targetProbabilities: Array(dense[(pending == nil ? vocabulary : 0)...]),
                rootProbabilities: root, rng: &generator)
            var sampling = AcceptSamplingRequest()
            sampling.hasPendingToken = reply.layout.hasPendingToken
            sampling.tokens = reply.layout.tokens
            sampling.parents = reply.layout.parents
            sampling.seed = seed * 31
            sampling.vocabularySize = vocabulary
            sampling.denseRows = dense
            #expect(try client.acceptSampling(sampling) == AcceptanceReply(sampled), "seed \(seed) dense")
            sampling.sparseRows = sparse
            #expect(try client.acceptSampling(sampling) == AcceptanceReply(sampled), "seed \(seed) sparse")
        }
    }
}

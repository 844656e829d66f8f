import Foundation
import RASDDatastore
import RASDDecoding
import RASDGGUF
import RASDModel
import RASDService
import RASDTokenizer
import RASDTrees
import Testing

/// Where the fixture builds its datastore: one directory per test process.
private let fixtureDatastorePath = FileManager.default.temporaryDirectory
    .appendingPathComponent("rasd-decoding-\(UUID().uuidString)").path

/// The real model, its tokenizer and one session, shared by the tests of this suite.
private final class Fixture: @unchecked Sendable {
    static let shared = Result { try Fixture() }
    let model: LlamaModel
    let tokenizer: Tokenizer
    let renderer: PromptRenderer
    let datastorePath: String

    init() throws {
        let path = try ReferenceModel.existingPath()
        model = try LlamaModel(path: path)
        tokenizer = try Tokenizer(contentsOf: path)
        renderer = PromptRenderer(tokenizer: tokenizer)
        // A small datastore of text the prompts below draw on.
        datastorePath = fixtureDatastorePath
        // The datastore lives as long as the test process; remove it when the process exits.
        atexit { try? FileManager.default.removeItem(atPath: fixtureDatastorePath) }
        let builder = try DatastoreBuilder(options: BuildOptions(
            output: datastorePath, vocabularySize: tokenizer.vocabularySize,
            tokenizer: TokenizerIdentity(name: tokenizer.name, fingerprint: tokenizer.fingerprint)))
        for doc in Self.corpus { try builder.add(document: tokenizer.encode(doc)) }
        try builder.finish()
    }

    static let corpus = [
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
        "def factorial(n):\n    \"\"\"Return n factorial.\"\"\"\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result\n",
        "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog again.",
        "Python is a programming language that lets you work quickly and integrate systems more effectively.",
    ]

    func session() throws -> InferenceSession { try InferenceSession(model: model, capacity: 1024, threads: 2) }
}

private func fixture() throws -> Fixture { try Fixture.shared.get() }

@Suite(.serialized) struct SpeculativeDecoderTests {
    static let prompts: [(text: String, chat: Bool)] = [
        ("def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", false),
        ("The quick brown fox jumps over the lazy dog. The quick brown fox", false),
        ("Repeat this sentence twice: Python is a programming language that lets you work quickly.", true),
    ]

    @Test func everyMethodEqualsGreedyDecoding() throws {
        let f = try fixture()
        let store = try Datastore(path: f.datastorePath)
        let session = try f.session()
        let costs = try VerifyCostModelCache.model(
            model: f.model, threads: 2, kernels: session.kernelPath, cacheDirectory: ReferenceModel.cacheDirectory)
        let decoder = SpeculativeDecoder(session: session, datastore: store, drafter: nil, costs: costs)
        var speculated = 0
        for p in Self.prompts {
            let prompt = try f.renderer.tokens(p.text, chat: p.chat)
            let (reference, arStats) = try decoder.generate(prompt: prompt, options: DecodeOptions(method: .ar, maxTokens: 40, stopTokens: f.renderer.stopTokens))
            #expect(arStats.tokens == reference.count && !reference.isEmpty)
            for method in [DecodingMethod.pld, .rest, .retrieval] {
                for budget in [TreeBudget.fixed(1), .fixed(5), .fixed(24), .adaptive(maximum: 63)] {
                    let options = DecodeOptions(method: method, maxTokens: 40, stopTokens: f.renderer.stopTokens, budget: budget)
                    var streamed: [UInt32] = []
                    let (output, stats) = try decoder.generate(prompt: prompt, options: options) { streamed += $0 }
                    #expect(output == reference, "\(method) \(budget) on \(p.text.prefix(30))")
                    #expect(streamed == output)
                    // The statistics add up: the first token comes from the prompt pass, every
                    // step emits its accepted tokens plus a bonus token (the last step may be cut).
                    let acceptedSpeculative = stats.acceptedBySource.isEmpty ? 0 : stats.tokens - 1 - stats.steps
                    #expect(stats.tokens == output.count)
                    #expect(stats.steps >= 1 && stats.tokens <= 1 + stats.steps + stats.verifiedNodes)
                    #expect(acceptedSpeculative <= stats.verifiedNodes)
                    if case .fixed(let n) = budget { #expect(stats.verifiedNodes <= n * stats.steps) }
                    speculated += stats.tokens - 1 - stats.steps
                }
            }
        }
        // Retrieval did propose accepted tokens somewhere, so the comparison exercised speculation.
        #expect(speculated > 20)
        // The decoder kept what the target accepted, per method, for its next requests.
        #expect(Set(decoder.calibrations.keys) == [.pld, .rest, .retrieval])
        #expect(decoder.calibrations[.pld] != AcceptanceCalibration())
    }

    @Test func stopTokensAndTokenLimitsCutExactlyWhereGreedyDecodingStops() throws {
        let f = try fixture()
        let store = try Datastore(path: f.datastorePath)
        let decoder = SpeculativeDecoder(session: try f.session(), datastore: store, drafter: nil, costs: nil)
        let prompt = try f.renderer.tokens(Self.prompts[0].text, chat: false)
        let (full, _) = try decoder.generate(prompt: prompt, options: DecodeOptions(method: .ar, maxTokens: 48))
        // Stop at a token that occurs mid-output: every method must end just before it.
        let stop = full[full.count / 2]
        let cut = Array(full.prefix(while: { $0 != stop }))
        for method in [DecodingMethod.ar, .pld, .retrieval] {
            for limit in [1, 7, 48] {
                let options = DecodeOptions(method: method, maxTokens: limit, stopTokens: [stop], budget: .fixed(16))
                let (out, _) = try decoder.generate(prompt: prompt, options: options)
                #expect(out == Array(cut.prefix(limit)), "\(method) limit \(limit)")
            }
        }
        let (none, stats) = try decoder.generate(prompt: prompt, options: DecodeOptions(method: .retrieval, maxTokens: 0, budget: .fixed(4)))
        #expect(none.isEmpty && stats.tokens == 0)
    }

    @Test func methodsThatNeedADrafterSaySo() throws {
        let f = try fixture()
        let decoder = SpeculativeDecoder(session: try f.session(), datastore: nil, drafter: nil, costs: nil)
        for method in [DecodingMethod.rasd, .draft] {
            let error = try #require(throws: DecodingError.self) {
                try decoder.generate(prompt: [1, 2, 3], options: DecodeOptions(method: method, maxTokens: 4, budget: .fixed(4)))
            }
            #expect(error.description.contains("drafter"))
        }
        let adaptive = try #require(throws: DecodingError.self) {
            try decoder.generate(prompt: [1, 2, 3], options: DecodeOptions(method: .pld, maxTokens: 4))
        }
        #expect(adaptive.description.contains("cost curve"))
    }

    @Test func aFailingDatastoreFallsBackToThePromptAndSaysSo() throws {
        final class Failing: RetrievalSource, @unchecked Sendable {
            var calls = 0
            var sourceDescription: String { "a datastore that dies" }
            func retrieve(context: [UInt32], parameters: RetrievalParameters) throws -> CandidateTrie {
                calls += 1
                throw DatastoreError(.io, path: "socket", "connection reset by peer")
            }
        }
        let f = try fixture()
        let failing = Failing()
        let decoder = SpeculativeDecoder(session: try f.session(), datastore: failing, drafter: nil, costs: nil)
        let prompt = try f.renderer.tokens(Self.prompts[1].text, chat: false)
        let (reference, _) = try decoder.generate(prompt: prompt, options: DecodeOptions(method: .ar, maxTokens: 24))
        let (out, stats) = try decoder.generate(prompt: prompt, options: DecodeOptions(method: .retrieval, maxTokens: 24, budget: .fixed(8)))
        #expect(out == reference)
        #expect(failing.calls == 1)
        #expect(stats.warnings.count == 1 && stats.warnings[0].contains("a datastore that dies") && stats.warnings[0].contains("prompt alone"))
    }

    /// `socket:PATH/NAME`: the daemon answers what the datastore answers in process, so decoding
    /// through it takes exactly the same steps; when the daemon dies mid-decode the decoder
    /// finishes from the prompt alone, still equal to greedy decoding, and says so.
    @Test func aDaemonSourceDecodesLikeTheDatastoreAndSurvivesTheDaemonDying() throws {
        let f = try fixture()
        let (server, socket) = try Daemon.start(serving: f.datastorePath)
        defer { Daemon.stop(server) }

        let identity = TokenizerIdentity(name: f.tokenizer.name, fingerprint: f.tokenizer.fingerprint)
        let parsed = try #require(try DaemonRetrievalSource.parse("socket:\(socket)/small"))
        #expect(parsed.socketPath == socket && parsed.datastore == "small")
        let remote = try DaemonRetrievalSource(socketPath: parsed.socketPath, datastore: parsed.datastore, expectedTokenizer: identity)
        let local = try Datastore(path: f.datastorePath)
        let prompt = try f.renderer.tokens(Self.prompts[0].text, chat: false)
        let options = DecodeOptions(method: .rest, maxTokens: 32, budget: .fixed(12))
        let (reference, _) = try SpeculativeDecoder(session: try f.session(), datastore: nil, drafter: nil, costs: nil)
            .generate(prompt: prompt, options: DecodeOptions(method: .ar, maxTokens: 32))
        let (viaLocal, localStats) = try SpeculativeDecoder(session: try f.session(), datastore: local, drafter: nil, costs: nil)
            .generate(prompt: prompt, options: options)
        let (viaDaemon, daemonStats) = try SpeculativeDecoder(session: try f.session(), datastore: remote, drafter: nil, costs: nil)
            .generate(prompt: prompt, options: options)
        #expect(viaLocal == reference && viaDaemon == reference)
        #expect(daemonStats.steps == localStats.steps && daemonStats.acceptedBySource == localStats.acceptedBySource)
        #expect(daemonStats.warnings.isEmpty && localStats.steps < reference.count - 1)  // retrieval did speculate

        // The daemon stops after the third request of the next decode.
        final class Dying: RetrievalSource, @unchecked Sendable {
            let inner: DaemonRetrievalSource, server: RetrievalServer
            var calls = 0
            init(_ inner: DaemonRetrievalSource, _ server: RetrievalServer) { (self.inner, self.server) = (inner, server) }
            var sourceDescription: String { inner.sourceDescription }
            func retrieve(context: [UInt32], parameters: RetrievalParameters) throws -> CandidateTrie {
                calls += 1
                if calls == 3 { server.shutdown() }
                return try inner.retrieve(context: context, parameters: parameters)
            }
        }
        let dying = Dying(remote, server)
        let (afterDeath, stats) = try SpeculativeDecoder(session: try f.session(), datastore: dying, drafter: nil, costs: nil)
            .generate(prompt: prompt, options: options)
        #expect(afterDeath == reference)
        // The daemon finishes what is in flight when it stops, so the third request may still
        // be answered; the next one fails and is the last.
        #expect((3...4).contains(dying.calls))
        #expect(stats.warnings.count == 1 && stats.warnings[0].contains("socket:\(socket)/small") && stats.warnings[0].contains("prompt alone"))

        // Bad specifications and names get errors that say what to do.
        #expect(throws: DecodingError.self) { try DaemonRetrievalSource.parse("socket:/no-name/") }
        #expect(try DaemonRetrievalSource.parse("indexes/code") == nil)
        #expect(throws: ServiceError.self) { try DaemonRetrievalSource(socketPath: socket + ".missing", datastore: "small", expectedTokenizer: nil) }
    }

    /// Cached cost curves are used as they are when consistent, and measured again when they
    /// were taken in a busy moment.
    @Test func inconsistentCachedCostCurvesAreMeasuredAgain() throws {
        let f = try fixture()
        let session = try f.session()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-curves-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = VerifyCostModelCache.file(model: f.model, threads: 2, kernels: session.kernelPath, cacheDirectory: directory)
        try FileManager.default.createDirectory(atPath: directory + "/cost-curves", withIntermediateDirectories: true)
        var heard: [String] = []
        func plant(_ relative: [Double], measurements: Int? = nil) throws -> VerifyCostModel {
            let curve = VerifyCostCurve(
                contextLength: 64, threads: 2, kernels: session.kernelPath.rawValue, singleStepSeconds: 0.004, sizes: [1, 2, 4],
                seconds: relative.map { $0 * 0.004 }, relative: relative)
            let planted = VerifyCostModel(curves: [curve], measurements: measurements)
            try JSONEncoder().encode(planted).write(to: URL(fileURLWithPath: file))
            return planted
        }
        let clean = try plant([1, 1.1, 1.4])
        #expect(try VerifyCostModelCache.model(
            model: f.model, threads: 2, kernels: session.kernelPath, cacheDirectory: directory, log: { heard.append($0) }) == clean)
        #expect(heard.isEmpty)
        // Inconsistent, but already the best of as many measurements as the cache makes: kept.
        let settled = try plant([11, 1.1, 1.4], measurements: VerifyCostModelCache.attempts)
        #expect(try VerifyCostModelCache.model(
            model: f.model, threads: 2, kernels: session.kernelPath, cacheDirectory: directory, log: { heard.append($0) }) == settled)
        #expect(heard.isEmpty)
        let busy = try plant([11, 1.1, 1.4])  // inconsistency 10: no real measurement is that bad
        let measured = try VerifyCostModelCache.model(
            model: f.model, threads: 2, kernels: session.kernelPath, cacheDirectory: directory, log: { heard.append($0) })
        #expect(measured != busy && measured.curves.count == VerifyCostModelCache.contexts.count)
        #expect(measured.measurements == 2)  // the planted one (unrecorded: 1) and one more
        #expect(heard.contains { $0.contains("inconsistent") } && heard.contains { $0.contains("measuring") })
        let cached = try JSONDecoder().decode(VerifyCostModel.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        #expect(cached == measured)
    }

    @Test func aDaemonSourceNamesWhatIsWrong() throws {
        let f = try fixture()
        let (server, socket) = try Daemon.start(serving: f.datastorePath)
        defer { Daemon.stop(server) }
        let unknown = try #require(throws: DecodingError.self) { try DaemonRetrievalSource(socketPath: socket, datastore: "code", expectedTokenizer: nil) }
        #expect(unknown.description.contains("no datastore named 'code'") && unknown.description.contains("small"))
        let other = TokenizerIdentity(name: "other", fingerprint: String(repeating: "ab", count: 32))
        let foreign = try #require(throws: DecodingError.self) { try DaemonRetrievalSource(socketPath: socket, datastore: "small", expectedTokenizer: other) }
        #expect(foreign.description.contains("other") && foreign.description.contains(f.tokenizer.name))
    }
}

/// A retrieval daemon in this process serving one datastore as "small".
private enum Daemon {
    static func start(serving path: String) throws -> (RetrievalServer, socket: String) {
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-decode-\(UUID().uuidString.prefix(8)).sock").path
        let server = try RetrievalServer(configuration: ServerConfiguration(socketPath: socket, datastores: [DatastoreSpec(name: "small", path: path)]))
        Thread { try? server.run() }.start()
        guard server.waitUntilListening(timeout: 10) else { throw ServiceError(.cannotConnect, "the test daemon did not start") }
        return (server, socket)
    }

    /// Stops the daemon (a second stop is harmless) and waits until its socket file is gone.
    static func stop(_ server: RetrievalServer) {
        server.shutdown()
        let deadline = Date().addingTimeInterval(30)
        while FileManager.default.fileExists(atPath: server.configuration.socketPath), Date() < deadline { usleep(10_000) }
    }
}

import ArgumentParser
import Foundation
import RASDDatastore
import RASDDecoding
import RASDDraftHead
import RASDGGUF
import RASDModel
import RASDTokenizer

/// `rasd-index decode`: speculative decoding with retrieval (and a model drafter), losslessly.
struct Decode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode with the real model, drafting from retrieval (datastore and prompt) and, with RASD, a model drafter.",
        discussion: """
            The output equals plain greedy decoding token for token; only the speed differs. The statistics \
            line (stderr) gives tokens, tokens/s, verification steps, the mean accepted length (`accepted N.NN`), \
            the draft share by source and the time in retrieval, drafting and verification.
            """)

    @Option(help: "GGUF model file (default: the reference model in the rasd cache).")
    var model: String?

    @Option(help: "Datastore: a name under indexes/, a directory, or socket:PATH/NAME for the daemon. Without it, retrieval uses the prompt alone.")
    var datastore: String?

    @Option(help: "Prompt text.")
    var prompt: String?

    @Option(help: "Prompt as comma-separated token ids.")
    var promptIds: String?

    @Flag(help: "Wrap the prompt in the model's chat template.")
    var chat = false

    @Option(help: "ar, pld, rest, retrieval, draft or rasd.")
    var method: DecodingMethod = .retrieval

    @Option(help: "Tokens to generate at most.")
    var maxTokens = 128

    @Option(help: "Speculative nodes per step: 'auto' (from the engine's verify-cost curves and the acceptance observed) or a number.")
    var budget = "auto"

    @Option(help: "Most speculative nodes an automatic budget may choose.")
    var maxBudget = 63

    @OptionGroup var retrieval: RetrievalOptions

    @Flag(help: "Print the generated token ids on one line instead of text.")
    var ids = false

    @Option(help: "Draft head for --method draft and rasd (default: heads/<model>.draft-head.gguf).")
    var draftHead: String?

    @Option(help: "Threads for the forward pass.")
    var threads = 2

    @Option(help: "Threads of the draft head's own (default: it computes on the forward pass's threads).")
    var headThreads: Int?

    @Option(help: "Kernel path: portable, avx2 or avx512vnni (default: the fastest this CPU runs).")
    var kernels: String?

    func validate() throws { try validateThreads(threads, head: headThreads) }

    func run() async throws {
        let modelPath = try model ?? ReferenceModel.existingPath()
        let tokenizer = try Tokenizer(contentsOf: modelPath)
        let renderer = PromptRenderer(tokenizer: tokenizer)
        let promptTokens = try PromptArguments(text: prompt, ids: promptIds, chat: chat).tokens(renderer)
        let source = try datastore.map { try RetrievalSources.open($0, tokenizer: tokenizer) }
        if method == .rest && source == nil { throw ValidationError("--method rest retrieves from a datastore: give --datastore") }

        let llama = try LlamaModel(path: modelPath)
        let session = try InferenceSession(
            model: llama, capacity: min(llama.config.contextLength, promptTokens.count + maxTokens + maxBudget + 2),
            threads: threads, kernels: try kernels.map(KernelPath.named))
        let treeBudget: TreeBudget
        if budget == "auto" {
            treeBudget = .adaptive(maximum: maxBudget)
        } else if let n = Int(budget), n >= 0 {
            treeBudget = .fixed(n)
        } else {
            throw ValidationError("--budget must be 'auto' or a number of nodes")
        }
        let log: (String) -> Void = { FileHandle.standardError.write(Data(("decode: " + $0 + "\n").utf8)) }
        let adaptive: Bool
        if case .adaptive = treeBudget { adaptive = true } else { adaptive = false }
        let costs = method == .ar || !adaptive
            ? nil : try VerifyCostModelCache.model(
                model: llama, threads: threads, kernels: session.kernelPath, cacheDirectory: ReferenceModel.cacheDirectory, log: log)
        let drafter = method.usesDrafter
            ? try DraftHeadDrafter(headAt: draftHead, for: session, threads: headThreads)
            : nil
        let decoder = SpeculativeDecoder(session: session, datastore: source, drafter: drafter, costs: costs)
        var output = TokenStream(tokenizer: tokenizer, asIDs: ids)
        let options = DecodeOptions(
            method: method, maxTokens: maxTokens, stopTokens: renderer.stopTokens, budget: treeBudget,
            retrieval: retrieval.value)
        let (_, stats) = try decoder.generate(prompt: promptTokens, options: options) { try output.emit($0) }
        output.finish()
        for w in stats.warnings { log("warning: " + w) }
        FileHandle.standardError.write(Data((stats.line + "\n").utf8))
    }
}

extension DecodingMethod: ExpressibleByArgument {}

/// Opens retrieval sources named on the command line.
enum RetrievalSources {
    /// A name under indexes/, a datastore directory, or `socket:PATH/NAME`.
    static func open(_ spec: String, tokenizer: Tokenizer) throws -> RetrievalSource {
        let identity = TokenizerIdentity(name: tokenizer.name, fingerprint: tokenizer.fingerprint)
        if let (socket, name) = try DaemonRetrievalSource.parse(spec) {
            return try DaemonRetrievalSource(socketPath: socket, datastore: name, expectedTokenizer: identity)
        }
        // A bare name is a datastore under indexes/ first: the repository's own docs/ folder must
        // not shadow the `docs` datastore.
        let named = "indexes/\(spec)"
        let path = !spec.contains("/") && FileManager.default.fileExists(atPath: named) ? named : spec
        guard FileManager.default.fileExists(atPath: path) else {
            throw DecodingError("no datastore '\(spec)': neither \(named) nor \(spec) exists (build one with `rasd-index build corpus \(spec)`, or give a path)")
        }
        return try Datastore(path: path, expectedTokenizer: identity)
    }
}

/// Streams generated tokens to stdout as text (never half a UTF-8 character) or as ids.
struct TokenStream {
    let asIDs: Bool
    private var decoder: StreamingDecoder
    private var first = true

    init(tokenizer: Tokenizer, asIDs: Bool) {
        self.asIDs = asIDs
        decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: true)
    }

    mutating func emit(_ tokens: [UInt32]) throws {
        if asIDs {
            let text = tokens.map(String.init).joined(separator: " ")
            FileHandle.standardOutput.write(Data(((first ? "" : " ") + text).utf8))
        } else {
            FileHandle.standardOutput.write(Data(try decoder.append(contentsOf: tokens).utf8))
        }
        first = false
    }

    mutating func finish() {
        if !asIDs { FileHandle.standardOutput.write(Data(decoder.finish().utf8)) }
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}

import ArgumentParser
import Foundation
import RASDGGUF
import RASDDecoding
import RASDModel
import RASDTokenizer

/// `rasd-index generate`: plain (non-speculative) generation with the engine, streaming tokens.
struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate from a GGUF model with the rasd engine (greedy or sampled), streaming the output.",
        discussion: """
            Prompt and decode speeds go to stderr. The prompt is text (--prompt, with --chat for the \
            model's chat template) or token ids (--prompt-ids); --ids prints ids instead of text.
            """)

    @Option(help: "GGUF model file (default: the reference model in the rasd cache).")
    var model: String?

    @Option(help: "Prompt as comma-separated token ids, e.g. 1,2,3.")
    var promptIds: String?

    @Option(help: "Prompt text.")
    var prompt: String?

    @Flag(help: "Wrap the prompt in the model's chat template.")
    var chat = false

    @Option(help: "Tokens to generate at most (stops earlier at end of sequence).")
    var maxTokens = 128

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability.")
    var topP: Float = 1

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Print the generated token ids on one line instead of text.")
    var ids = false

    @Option(help: "Threads for the forward pass.")
    var threads = 2

    @Option(help: "Kernel path: portable, avx2 or avx512vnni (default: the fastest this CPU runs).")
    var kernels: String?

    func run() async throws {
        let modelPath = try model ?? ReferenceModel.existingPath()
        let model = try LlamaModel(path: modelPath)
        let tokenizer = try Tokenizer(contentsOf: modelPath)
        let promptTokens = try PromptArguments(text: prompt, ids: promptIds, chat: chat).tokens(PromptRenderer(tokenizer: tokenizer))
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be at least 0") }
        let session = try InferenceSession(
            model: model, capacity: min(model.config.contextLength, promptTokens.count + maxTokens + 1),
            threads: threads, kernels: try kernels.map(KernelPath.named))
        var sampler = try Sampler(temperature: temperature, topP: topP, seed: seed)
        var output = TokenStream(tokenizer: tokenizer, asIDs: ids)
        let stops = PromptRenderer(tokenizer: tokenizer).stopTokens.union(model.endOfSequenceToken.map { [$0] } ?? [])

        let start = DispatchTime.now()
        try session.prefill(promptTokens)
        var next = try session.withLastLogits { sampler.sample($0) }
        let prefillSeconds = seconds(since: start)

        let decodeStart = DispatchTime.now()
        var generated = 0
        while generated < maxTokens, !stops.contains(next) {
            try output.emit([next])
            generated += 1
            if generated == maxTokens { break }
            try session.decodeStep(next)
            next = try session.withLastLogits { sampler.sample($0) }
        }
        output.finish()
        let decodeSeconds = seconds(since: decodeStart)
        let decodeSteps = max(generated - 1, 0)
        FileHandle.standardError.write(Data(String(
            format: "prompt: %d tokens, %.1f tok/s; decode: %d tokens, %.1f tok/s (%@ kernels, %d threads)\n",
            promptTokens.count, Double(promptTokens.count) / prefillSeconds, generated,
            decodeSteps > 0 ? Double(decodeSteps) / decodeSeconds : 0, session.kernelPath.rawValue, session.threadCount
        ).utf8))
    }

    private func seconds(since start: DispatchTime) -> Double {
        max(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9, 1e-9)
    }
}

/// A prompt given as text (optionally a chat turn) or as token ids.
struct PromptArguments {
    var text: String?
    var ids: String?
    var chat: Bool

    func tokens(_ renderer: PromptRenderer) throws -> [UInt32] {
        let tokens: [UInt32]
        switch (text, ids) {
        case (let text?, nil): tokens = try renderer.tokens(text, chat: chat)
        case (nil, let list?):
            guard !chat else { throw ValidationError("--chat needs a text --prompt") }
            tokens = try TokenList.parse(list, option: "--prompt-ids")
        case (.some, .some): throw ValidationError("pass either --prompt or --prompt-ids, not both")
        default: throw ValidationError("pass a prompt: --prompt \"...\" or --prompt-ids 1,2,3")
        }
        guard !tokens.isEmpty else { throw ValidationError("the prompt is empty") }
        return tokens
    }
}

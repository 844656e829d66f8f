import ArgumentParser
import Foundation
import RASDGGUF
import RASDModel

/// `rasd-index generate`: plain (non-speculative) generation with the engine, streaming tokens.
struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate from a GGUF model with the rasd engine (greedy or sampled), streaming the output.",
        discussion: """
            Prompt and decode speeds go to stderr. Until the tokenizer lands in this build, \
            prompts are token ids (--prompt-ids) and output is token ids.
            """)

    @Option(help: "GGUF model file (default: the reference model in the rasd cache).")
    var model: String?

    @Option(help: "Prompt as comma-separated token ids, e.g. 1,2,3.")
    var promptIds: String?

    @Option(help: "Prompt text (needs the tokenizer).")
    var prompt: String?

    @Flag(help: "Wrap the prompt in the model's chat template (needs the tokenizer).")
    var chat = false

    @Option(help: "Tokens to generate at most (stops earlier at end of sequence).")
    var maxTokens = 128

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability.")
    var topP: Float = 1

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Print the generated token ids on one line instead of text (until the tokenizer lands, ids are printed either way).")
    var ids = false

    @Option(help: "Threads for the forward pass.")
    var threads = 2

    @Option(help: "Kernel path: portable, avx2 or avx512vnni (default: the fastest this CPU runs).")
    var kernels: String?

    func run() async throws {
        let promptTokens = try promptTokenIDs()
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be at least 0") }
        let model = try LlamaModel(path: model ?? ReferenceModel.existingPath())
        let session = try InferenceSession(
            model: model, capacity: min(model.config.contextLength, promptTokens.count + maxTokens + 1),
            threads: threads, kernels: try kernels.map(KernelPath.named))
        var sampler = try Sampler(temperature: temperature, topP: topP, seed: seed)
        var output = TokenOutput(asIDs: ids)

        let start = DispatchTime.now()
        try session.prefill(promptTokens)
        var next = try session.withLastLogits { sampler.sample($0) }
        let prefillSeconds = seconds(since: start)

        let decodeStart = DispatchTime.now()
        var generated = 0
        while generated < maxTokens {
            output.emit(next)
            generated += 1
            if next == model.endOfSequenceToken || generated == maxTokens { break }
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

    /// The prompt as token ids. Text prompts are the seam for the tokenizer (RASDTokenizer).
    private func promptTokenIDs() throws -> [UInt32] {
        if let promptIds {
            guard prompt == nil else { throw ValidationError("pass either --prompt or --prompt-ids, not both") }
            guard !chat else { throw ValidationError("--chat needs a text --prompt") }
            return try Self.parseIDs(promptIds)
        }
        guard prompt != nil else { throw ValidationError("pass a prompt: --prompt \"...\" or --prompt-ids 1,2,3") }
        throw ValidationError("text prompts need the tokenizer, which this build does not have yet; pass --prompt-ids")
    }

    static func parseIDs(_ text: String) throws -> [UInt32] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let ids = parts.compactMap { UInt32($0.trimmingCharacters(in: .whitespaces)) }
        guard !ids.isEmpty, ids.count == parts.count else {
            throw ValidationError("--prompt-ids must be comma-separated token ids, e.g. 1,2,3 (got \"\(text)\")")
        }
        return ids
    }

    private func seconds(since start: DispatchTime) -> Double {
        max(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9, 1e-9)
    }
}

/// Streams generated tokens to stdout. The seam for text output: once the tokenizer is in the
/// build, `emit` decodes incrementally when `asIDs` is false; until then it prints ids.
struct TokenOutput {
    let asIDs: Bool
    private var first = true

    init(asIDs: Bool) { self.asIDs = asIDs }

    mutating func emit(_ token: UInt32) {
        // Text output needs RASDTokenizer (issue in progress): ids for now, whatever `asIDs` says.
        FileHandle.standardOutput.write(Data(((first ? "" : " ") + String(token)).utf8))
        first = false
    }

    func finish() { FileHandle.standardOutput.write(Data("\n".utf8)) }
}

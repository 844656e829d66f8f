import ArgumentParser
import Foundation
import RASDDraftHead
import RASDGGUF
import RASDModel
import RASDTokenizer

/// `rasd-index draft-head`: train, inspect and measure the EAGLE-style draft head.
struct DraftHeadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "draft-head",
        abstract: "The EAGLE-style draft head: train it from scratch, dump the target's features.",
        subcommands: [DraftHeadTrain.self, DraftHeadFeatures.self])
}

/// `rasd-index draft-head train`: the whole recipe, from scratch.
struct DraftHeadTrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the draft head from scratch: training set, target features, JAX training, GGUF export.",
        discussion: """
            Stages: scripts/draft-head/prepare.py chooses corpus texts and prompts disjoint from the evaluation \
            sets; the rasd engine dumps the target's hidden states (and answers the prompts greedily); \
            scripts/draft-head/train.py trains with JAX/optax in the pinned venv of scripts/draft-head/setup; \
            scripts/draft-head/export.py writes the GGUF and its provenance JSON. Intermediate files stay in \
            --work, so a run that is interrupted resumes. Run from the repository root.
            """)

    @Option(help: "GGUF model file (default: the reference model).")
    var model: String?

    @Option(help: "Corpus to train on (code, docs, papers; default all three); repeatable.")
    var corpus: [String] = []

    @Option(help: "The head's GGUF (default: heads/<model>.draft-head.gguf).")
    var out: String?

    @Option(help: "Directory for intermediate files (default: $RASD_CACHE/draft-head/<model>-seed<seed>).")
    var work: String?

    @Option(help: "Evaluation task sets the training data must not overlap (default: $RASD_CACHE/tasks).")
    var tasks: String?

    @Option(help: "Characters of corpus text per corpus.")
    var textChars = 500_000

    @Option(help: "Greedy-answer prompts per corpus and kind.")
    var prompts = 120

    @Option(help: "Training steps (16 windows of 256 tokens each).")
    var steps = 1500

    @Option(help: "Draft vocabulary size.")
    var vocabulary = 8192

    @Option(help: "Seed for the data choice, initialisation and batches.")
    var seed = 0

    @Option(help: "Time limit for the whole run in minutes; training stops early to keep it.")
    var minutes = 120.0

    @Option(help: "Threads for the feature dump.")
    var threads = 2

    func run() async throws {
        let modelPath = try model ?? ReferenceModel.existingPath()
        guard FileManager.default.fileExists(atPath: "scripts/draft-head/train.py") else {
            throw ValidationError("run from the repository root (scripts/draft-head/ is not here)")
        }
        let stem = DraftHeadLocation.fileName(forModel: modelPath).replacingOccurrences(of: ".draft-head.gguf", with: "")
        var training = DraftHeadTraining(
            modelPath: modelPath, corpora: corpus.isEmpty ? ["code", "docs", "papers"] : corpus,
            output: out ?? "heads/" + DraftHeadLocation.fileName(forModel: modelPath),
            workDirectory: work ?? ReferenceModel.cacheDirectory + "/draft-head/\(stem)-seed\(seed)",
            scripts: "scripts/draft-head", taskDirectory: tasks ?? ReferenceModel.cacheDirectory + "/tasks")
        training.textCharacters = textChars
        training.prompts = prompts
        training.steps = steps
        training.vocabulary = vocabulary
        training.seed = seed
        training.minutes = minutes
        training.threads = threads
        try training.run { FileHandle.standardError.write(Data(("draft-head: " + $0 + "\n").utf8)) }
    }
}

/// `rasd-index draft-head features`: the target's hidden states for a training set.
struct DraftHeadFeatures: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features",
        abstract: "Dump the target's tokens and final hidden states for training records (resumable).",
        discussion: "Records come from scripts/draft-head/prepare.py (prepared.jsonl); prompts are answered greedily by the target.")

    @Option(help: "Training records (prepared.jsonl).")
    var records: String

    @Option(help: "Output directory (tokens.u32, features.f16, sequences.jsonl).")
    var out: String

    @Option(help: "GGUF model file (default: the reference model).")
    var model: String?

    @Option(help: "Most tokens per corpus text; prompts keep their end.")
    var sequenceLength = 512

    @Option(help: "Threads for the forward pass.")
    var threads = 2

    func run() async throws {
        let modelPath = try model ?? ReferenceModel.existingPath()
        let tokenizer = try Tokenizer(contentsOf: modelPath)
        let llama = try LlamaModel(path: modelPath)
        let dump = FeatureDump(model: llama, tokenizer: tokenizer, sequenceLength: sequenceLength, threads: threads)
        let summary = try dump.run(records: try FeatureDump.records(at: records), directory: out) {
            FileHandle.standardError.write(Data(("features: " + $0 + "\n").utf8))
        }
        print(String(format: "features: %d sequences, %d tokens (%d generated by the target) in %.0f s -> %@",
                     summary.sequences, summary.tokens, summary.generatedTokens, summary.seconds, out))
    }
}

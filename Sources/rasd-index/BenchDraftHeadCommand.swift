import ArgumentParser
import Foundation
import RASDDraftHead
import RASDGGUF
import RASDModel

/// `rasd-index bench draft-head`: the cost of a draft step against a target step, same run.
struct BenchDraftHead: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "draft-head",
        abstract: "Draft head step, tree level and whole draft tree against a target single-token step (interleaved medians).")

    @Option(help: "GGUF model file (default: the reference model).")
    var model: String?

    @Option(help: "Draft head (default: heads/<model>.draft-head.gguf).")
    var draftHead: String?

    @Option(help: "Context length before the measured steps.")
    var context = 512

    @Option(help: "Samples per figure (medians reported).")
    var samples = 50

    @Option(help: "Nodes of the draft tree and of the verified tree.")
    var budget = 32

    @Option(help: "Threads for the target.")
    var threads = 2

    @Option(help: "Threads of the head's own (default: it computes on the target's threads, as decoding runs it).")
    var headThreads: Int?

    func validate() throws { try validateThreads(threads, head: headThreads) }

    func run() async throws {
        let modelPath = try model ?? ReferenceModel.existingPath()
        let llama = try LlamaModel(path: modelPath)
        let head = try DraftHeadLocation.load(draftHead, model: llama)
        let f = try DraftHeadBenchmark.run(head: head, context: context, samples: samples, treeBudget: budget, threads: threads, headThreads: headThreads)
        print("Machine: \(Machine.description). Date: \(Machine.date). \(threads) target threads, head on \(f.headSharesTargetThreads ? "the target's threads" : "\(f.headThreads) thread\(f.headThreads == 1 ? "" : "s") of its own"), context \(context) tokens, \(samples) interleaved samples (medians).")
        print("Head: \(head.path) (\(head.vocabulary.count)-token draft vocabulary, \(String(format: "%.1f", Double(head.weightBytes) / 1_048_576)) MiB in memory).\n")
        print("| step | median | vs target step |")
        print("|---|---:|---:|")
        let rows: [(String, Double)] = [
            ("target single-token step", f.targetStep),
            ("draft step (head, 1 node)", f.headStep),
            ("head tree level (\(f.levelWidth) nodes)", f.headLevel),
            ("whole dynamic draft tree (budget \(f.treeBudget), kept \(f.draftTreeNodes) nodes)", f.draftTree),
            ("target verification (1 + \(f.treeBudget) nodes)", f.targetVerify),
        ]
        for (name, t) in rows { print(String(format: "| %@ | %.3f ms | %.3f |", name, t * 1000, t / f.targetStep)) }
    }
}

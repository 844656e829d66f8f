import ArgumentParser
import Foundation
import RASDDatastore
import RASDDecoding
import RASDDraftHead
import RASDGGUF
import RASDModel
import RASDTokenizer

/// `rasd-index eval`: the four RASD tasks, every method against greedy decoding in the same run.
struct Eval: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate decoding methods on the Code, Summary, DocQA and In-domain QA tasks.",
        discussion: """
            For every prompt, `ar` (plain greedy) runs first, then each other method from the same prompt; \
            outputs must be identical to ar's. Prints a table (mean accepted length, tokens/s, speedup over ar) \
            and writes eval.json and eval.md (and eval.svg with --plot) to --out. Task sets come from \
            scripts/tasks/build_tasks.py; datastores from indexes/<name> (scripts/quickstart builds them).
            """)

    @Option(help: "Tasks, comma-separated: code, summary, docqa, qa, or all.")
    var task = "all"

    @Option(help: "Methods, comma-separated: ar, pld, rest, retrieval, draft, rasd.")
    var methods = "ar,pld,rest,retrieval"

    @Option(help: "Prompts per task (spread evenly over the set); all when omitted.")
    var limit: Int?

    @Option(help: "Prompt tokens at most; longer documents are cut (see docs/eval.md).")
    var promptBudget = 1024

    @Option(help: "Tokens to generate per prompt (default: each task's own).")
    var maxTokens: Int?

    @Option(help: "Speculative nodes per step: 'auto' or a number.")
    var budget = "auto"

    @Option(help: "Most speculative nodes an automatic budget may choose.")
    var maxBudget = 63

    @Option(help: "Directory for eval.json, eval.md, eval.svg (default: results/eval-<time>).")
    var out: String?

    @Flag(help: "Also write an SVG chart of speedup by task and method.")
    var plot = false

    @Option(help: "Task sets directory (default: $RASD_CACHE/tasks).")
    var tasks: String?

    @Option(help: "GGUF model (default: the reference model).")
    var model: String?

    @Option(help: "Draft head for the draft and rasd methods (default: heads/<model>.draft-head.gguf).")
    var draftHead: String?

    @Option(help: "Threads for the forward pass.")
    var threads = 2

    @Option(help: "Threads of the draft head's own (default: it computes on the forward pass's threads).")
    var headThreads: Int?

    @Option(help: "Kernel path: portable, avx2 or avx512vnni.")
    var kernels: String?

    func validate() throws { try validateThreads(threads, head: headThreads) }

    func run() async throws {
        let taskNames = task == "all" ? ["code", "summary", "docqa", "qa"] : task.split(separator: ",").map(String.init)
        let methodList = try methods.split(separator: ",").map { name -> DecodingMethod in
            guard let m = DecodingMethod(rawValue: String(name)) else { throw ValidationError("unknown method \(name)") }
            return m
        }
        let treeBudget: TreeBudget
        if budget == "auto" { treeBudget = .adaptive(maximum: maxBudget) } else if let n = Int(budget), n >= 0 { treeBudget = .fixed(n) } else {
            throw ValidationError("--budget must be 'auto' or a number")
        }
        let modelPath = try model ?? ReferenceModel.existingPath()
        let tokenizer = try Tokenizer(contentsOf: modelPath)
        let llama = try LlamaModel(path: modelPath)
        let session = try InferenceSession(
            model: llama, capacity: min(llama.config.contextLength, promptBudget + (maxTokens ?? 256) + 128),
            threads: threads, kernels: try kernels.map(KernelPath.named))
        let log: (String) -> Void = { FileHandle.standardError.write(Data(("eval: " + $0 + "\n").utf8)) }
        let costs = try VerifyCostModelCache.model(
            model: llama, threads: threads, kernels: session.kernelPath, cacheDirectory: ReferenceModel.cacheDirectory, log: log)
        let drafter = methodList.contains(where: \.usesDrafter)
            ? try DraftHeadDrafter(headAt: draftHead, for: session, threads: headThreads)
            : nil
        var stores: [String: RetrievalSource] = [:]
        let identity = TokenizerIdentity(name: tokenizer.name, fingerprint: tokenizer.fingerprint)
        let evaluation = Evaluation(
            tasks: taskNames, methods: methodList, limit: limit, promptBudget: promptBudget, budget: treeBudget, maxTokens: maxTokens)
        let (results, rendered) = try evaluation.run(
            session: session, renderer: PromptRenderer(tokenizer: tokenizer), costs: costs,
            taskDirectory: tasks ?? ReferenceModel.cacheDirectory + "/tasks",
            datastore: { name in
                if let s = stores[name] { return s }
                let path = "indexes/\(name)"
                guard FileManager.default.fileExists(atPath: path) else {
                    throw ValidationError("\(path) is missing: build it with `rasd-index build corpus \(name)` (scripts/quickstart builds all three)")
                }
                let s = try Datastore(path: path, expectedTokenizer: identity)
                stores[name] = s
                return s
            },
            drafter: drafter, log: log)
        let report = EvaluationReport(
            machine: Machine.description, date: Machine.date, model: URL(fileURLWithPath: modelPath).lastPathComponent,
            kernels: session.kernelPath.rawValue, threads: threads, budget: treeBudget.description, promptBudget: promptBudget,
            limit: limit, results: results)
        let directory = out ?? "results/eval-\(Int(Date().timeIntervalSince1970))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: directory + "/eval.json"))
        let header = "Machine: \(report.machine). Date: \(report.date). Model \(report.model), \(report.kernels) kernels, "
            + "\(threads) threads. Budget \(report.budget); prompts ≤ \(promptBudget) tokens; \(limit.map { "\($0) prompts per task" } ?? "all prompts").\n\n"
        try (header + report.markdown + "\n").write(toFile: directory + "/eval.md", atomically: false, encoding: .utf8)
        // The prompts as token ids, for scripts/eval/llama_cpp_side_by_side.py.
        let lines = try rendered.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/prompts.jsonl", atomically: false, encoding: .utf8)
        if plot { try report.svg.write(toFile: directory + "/eval.svg", atomically: false, encoding: .utf8) }
        print(header + report.markdown)
        print("\nwritten to \(directory)/")
        let failures = results.filter { $0.method != "ar" && $0.identicalToAR != $0.prompts }
        if !failures.isEmpty {
            print("LOSSLESSNESS VIOLATED: \(failures.map { "\($0.task)/\($0.method)" }.joined(separator: ", "))")
            throw ExitCode(2)
        }
    }
}

import Foundation
import RASDModel

/// One prompt of an evaluation task (a line of `$RASD_CACHE/tasks/<task>.jsonl`, written by
/// `scripts/tasks/build_tasks.py`).
public struct EvalPrompt: Codable, Sendable {
    public var id: String
    public var task: String
    /// Datastore the task retrieves from (a name under indexes/).
    public var datastore: String
    /// Chat prompt (instruction, document, question) or plain completion (`prompt`).
    public var chat: Bool
    public var maxTokens: Int
    public var prompt: String?
    public var instruction: String?
    public var document: String?
    public var question: String?

    /// Loads the prompts of `task` from `directory`; `limit` takes that many spread evenly over the set.
    public static func load(task: String, directory: String, limit: Int?) throws -> [EvalPrompt] {
        let path = directory + "/" + task + ".jsonl"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DecodingError("\(path): no task set here; build the task sets with scripts/tasks/build_tasks.py")
        }
        let decoder = JSONDecoder()
        var all: [EvalPrompt] = []
        for (i, line) in text.split(separator: "\n").enumerated() {
            guard let p = try? decoder.decode(EvalPrompt.self, from: Data(line.utf8)) else {
                throw DecodingError("\(path): line \(i + 1) is not a task record; rebuild with scripts/tasks/build_tasks.py")
            }
            all.append(p)
        }
        guard let limit, limit < all.count else { return all }
        return (0..<max(0, limit)).map { all[$0 * all.count / max(1, limit)] }
    }

    /// The prompt's tokens under `budget` prompt tokens (see ``PromptRenderer``).
    public func tokens(renderer: PromptRenderer, budget: Int) throws -> (tokens: [UInt32], truncated: Bool) {
        if chat {
            return try renderer.tokens(instruction: instruction ?? "", document: document ?? "", question: question ?? "", budget: budget)
        }
        let t = try renderer.tokens(prompt ?? "", chat: false)
        return (Array(t.suffix(budget)), t.count > budget)
    }
}

/// Results of one method on one task.
public struct MethodResult: Codable, Sendable {
    public var task: String
    public var method: String
    public var prompts = 0
    public var tokens = 0
    public var steps = 0
    public var seconds = 0.0
    public var verifiedNodes = 0
    public var acceptedBySource: [String: Int] = [:]
    /// Prompts whose output equalled `ar`'s token for token.
    public var identicalToAR = 0
    /// Speedup over `ar` of the slowest prompt (per-prompt tokens/s ratio).
    public var worstPromptSpeedup: Double?
    public var retrievalSeconds = 0.0
    public var draftSeconds = 0.0
    /// Steps that ran the model drafter.
    public var draftedSteps = 0
    /// Steps that queried the datastore.
    public var datastoreSteps = 0

    public var meanAcceptedLength: Double { steps == 0 ? 0 : Double(tokens) / Double(steps) }
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : 0 }

    mutating func add(_ s: DecodeStatistics) {
        prompts += 1
        tokens += s.tokens
        steps += s.steps
        seconds += s.seconds
        verifiedNodes += s.verifiedNodes
        retrievalSeconds += s.retrievalSeconds
        draftSeconds += s.draftSeconds
        draftedSteps += s.draftedSteps
        datastoreSteps += s.datastoreSteps
        for (k, v) in s.acceptedBySource { acceptedBySource[k, default: 0] += v }
    }
}

/// A whole evaluation: every task × method, with speedups against `ar` from the same run.
public struct EvaluationReport: Codable, Sendable {
    public var machine: String
    public var date: String
    public var model: String
    public var kernels: String
    public var threads: Int
    public var budget: String
    public var promptBudget: Int
    public var limit: Int?
    public var results: [MethodResult]
    /// llama.cpp figures added by scripts/eval/llama_cpp_side_by_side.py, when it ran.
    public var peers: [PeerResult] = []

    public init(
        machine: String, date: String, model: String, kernels: String, threads: Int, budget: String, promptBudget: Int,
        limit: Int?, results: [MethodResult]
    ) {
        self.machine = machine
        self.date = date
        self.model = model
        self.kernels = kernels
        self.threads = threads
        self.budget = budget
        self.promptBudget = promptBudget
        self.limit = limit
        self.results = results
    }

    /// Speedup of `result` over `ar` on the same task (tokens/s ratio).
    public func speedup(_ result: MethodResult) -> Double? {
        guard let ar = results.first(where: { $0.task == result.task && $0.method == "ar" }), ar.tokensPerSecond > 0 else { return nil }
        return result.tokensPerSecond / ar.tokensPerSecond
    }

    /// A markdown table, one row per task and method.
    public var markdown: String {
        var lines = [
            "| task | method | prompts | mean accepted | tokens/s | speedup vs ar | worst prompt | identical to ar |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in results {
            let speed = speedup(r).map { String(format: "%.2f×", $0) } ?? "—"
            let worst = r.worstPromptSpeedup.map { String(format: "%.2f×", $0) } ?? "—"
            lines.append(String(
                format: "| %@ | %@ | %d | %.2f | %.1f | %@ | %@ | %@ |", r.task, r.method, r.prompts, r.meanAcceptedLength,
                r.tokensPerSecond, speed, worst, r.method == "ar" ? "reference" : "\(r.identicalToAR)/\(r.prompts)"))
        }
        for p in peers {
            lines.append(String(format: "| %@ | %@ | %d | — | %.1f | %@ | — | — |", p.task, p.method, p.prompts, p.tokensPerSecond,
                                p.speedupOverRASDAR.map { String(format: "%.2f×", $0) } ?? "—"))
        }
        return lines.joined(separator: "\n")
    }

    /// An SVG bar chart of speedup by task and method.
    public var svg: String {
        let tasks = results.map(\.task).uniqued()
        let methods = results.map(\.method).uniqued()
        let barWidth = 16.0, gap = 28.0, height = 260.0, top = 30.0, left = 50.0
        let groupWidth = Double(methods.count) * barWidth + gap
        let width = left + Double(tasks.count) * groupWidth + 120
        let maxSpeed = max(2.0, (results.compactMap { speedup($0) }.max() ?? 1) * 1.1)
        func y(_ v: Double) -> Double { top + height * (1 - v / maxSpeed) }
        let colors = ["#888888", "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"]
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height + top + 60))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<text x=\"\(left)\" y=\"18\" font-size=\"13\">Speedup over greedy decoding (ar), same run</text>\n"
        for tick in stride(from: 0.0, through: maxSpeed, by: 0.5) {
            svg += "<line x1=\"\(left - 4)\" x2=\"\(width - 110)\" y1=\"\(y(tick))\" y2=\"\(y(tick))\" stroke=\"\(tick == 1 ? "#000" : "#ddd")\"/>"
            svg += "<text x=\"\(left - 8)\" y=\"\(y(tick) + 4)\" text-anchor=\"end\">\(String(format: "%.1f", tick))×</text>\n"
        }
        for (ti, task) in tasks.enumerated() {
            let x0 = left + Double(ti) * groupWidth + gap / 2
            for (mi, method) in methods.enumerated() {
                guard let r = results.first(where: { $0.task == task && $0.method == method }), let s = speedup(r) else { continue }
                let x = x0 + Double(mi) * barWidth
                svg += "<rect x=\"\(x)\" y=\"\(y(s))\" width=\"\(barWidth - 2)\" height=\"\(top + height - y(s))\" fill=\"\(colors[mi % colors.count])\"><title>\(task) \(method): \(String(format: "%.2f", s))×</title></rect>\n"
            }
            svg += "<text x=\"\(x0 + Double(methods.count) * barWidth / 2)\" y=\"\(top + height + 16)\" text-anchor=\"middle\">\(task)</text>\n"
        }
        for (mi, method) in methods.enumerated() {
            let ly = top + 14 * Double(mi)
            svg += "<rect x=\"\(width - 100)\" y=\"\(ly)\" width=\"10\" height=\"10\" fill=\"\(colors[mi % colors.count])\"/><text x=\"\(width - 85)\" y=\"\(ly + 9)\">\(method)</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }
}

/// A peer's figure on the same prompts (llama.cpp, plain or with its prompt lookup).
public struct PeerResult: Codable, Sendable {
    public var task: String
    public var method: String
    public var prompts: Int
    public var tokensPerSecond: Double
    public var speedupOverRASDAR: Double?
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

/// A prompt as the model saw it, for peers that replay the same tokens (llama.cpp).
public struct RenderedPrompt: Codable, Sendable {
    public var task: String
    public var id: String
    public var tokens: [UInt32]
    public var maxTokens: Int
    public var stopTokens: [UInt32]
}

/// Runs the evaluation: for every prompt, `ar` first, then every other method from the same
/// prompt KV entries, checking each output against `ar`'s.
public struct Evaluation {
    public var tasks: [String]
    public var methods: [DecodingMethod]
    public var limit: Int?
    public var promptBudget: Int
    public var budget: TreeBudget
    public var maxTokens: Int?

    public init(tasks: [String], methods: [DecodingMethod], limit: Int?, promptBudget: Int, budget: TreeBudget, maxTokens: Int?) {
        self.tasks = tasks
        self.methods = methods
        self.limit = limit
        self.promptBudget = promptBudget
        self.budget = budget
        self.maxTokens = maxTokens
    }

    /// Runs everything; `datastore(name)` opens a task's datastore (nil when unavailable), `log`
    /// hears one line per prompt.
    public func run(
        session: InferenceSession, renderer: PromptRenderer, costs: VerifyCostModel?, taskDirectory: String,
        datastore: (String) throws -> RetrievalSource?, drafter: Drafter?, log: (String) -> Void
    ) throws -> (results: [MethodResult], prompts: [RenderedPrompt]) {
        var results: [MethodResult] = []
        var rendered: [RenderedPrompt] = []
        let order = [DecodingMethod.ar] + methods.filter { $0 != .ar }
        for task in tasks {
            let prompts = try EvalPrompt.load(task: task, directory: taskDirectory, limit: limit)
            var byMethod = Dictionary(uniqueKeysWithValues: order.map { ($0, MethodResult(task: task, method: $0.rawValue)) })
            // One decoder per task: what the target accepted carries from prompt to prompt
            // (per method), as it would over a user's stream of requests.
            let decoder = SpeculativeDecoder(session: session, datastore: nil, drafter: drafter, costs: costs)
            for prompt in prompts {
                let (tokens, truncated) = try prompt.tokens(renderer: renderer, budget: promptBudget)
                rendered.append(RenderedPrompt(
                    task: task, id: prompt.id, tokens: tokens, maxTokens: maxTokens ?? prompt.maxTokens,
                    stopTokens: renderer.stopTokens.sorted()))
                decoder.datastore = try datastore(prompt.datastore)
                var reference: [UInt32] = []
                var arRate = 0.0
                var line = "\(task) \(prompt.id): \(tokens.count) prompt tokens\(truncated ? " (document cut)" : "")"
                for method in order {
                    let options = DecodeOptions(
                        method: method, maxTokens: maxTokens ?? prompt.maxTokens, stopTokens: renderer.stopTokens, budget: budget)
                    let (output, stats) = try decoder.generate(prompt: tokens, options: options)
                    byMethod[method]?.add(stats)
                    if method == .ar {
                        reference = output
                        arRate = stats.tokensPerSecond
                    } else {
                        if output == reference { byMethod[method]?.identicalToAR += 1 }
                        if arRate > 0 {
                            let s = stats.tokensPerSecond / arRate
                            let worst = byMethod[method]?.worstPromptSpeedup ?? s
                            byMethod[method]?.worstPromptSpeedup = min(worst, s)
                        }
                    }
                    line += String(format: "; %@ %.2f acc %.0f tok/s%@", method.rawValue, stats.meanAcceptedLength, stats.tokensPerSecond,
                                   method != .ar && output != reference ? " DIFFERS" : "")
                }
                log(line)
            }
            results += order.compactMap { byMethod[$0] }
        }
        return (results, rendered)
    }
}

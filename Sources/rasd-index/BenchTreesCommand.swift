import ArgumentParser
import Foundation
import RASDTrees

/// `rasd-index bench trees`: the per-step tree work of RASD (prune + fuse + layout) on seeded,
/// realistic workloads; medians per stage and the allocation count in steady state.
struct BenchTrees: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trees",
        abstract: "Prune + fuse + layout per decode step: medians and steady-state allocations.",
        discussion: """
            Workloads come from SyntheticTreeWorkload (an EAGLE-2-style draft tree, a datastore \
            trie that partly agrees with it, the drafter's dense root distribution). Every step \
            runs each variant once on the next workload, so the variants share the machine's \
            noise and their ratios are comparable.
            """)

    @Option(help: "Timed steps per variant.")
    var runs = 20_000
    @Option(help: "Distinct seeded workloads, used in turn.")
    var workloads = 64
    @Option(help: "Seed of the first workload.")
    var seed: UInt64 = 1
    @Option(help: "Draft tree nodes.")
    var draftNodes = 60
    @Option(help: "Retrieval trie nodes.")
    var retrievalNodes = 64
    @Option(help: "Vocabulary size (the root distribution's length).")
    var vocabulary = 49_152
    @Option(help: "Drafter top-k at the root that retrieval branches must start with.")
    var topK = 8
    @Option(help: "Fused tree budget (speculative nodes).")
    var budget = 64

    func validate() throws {
        guard runs > 0, workloads > 0 else { throw ValidationError("--runs and --workloads must be positive") }
        guard draftNodes > 0, retrievalNodes > 0, topK >= 0, budget >= 0 else {
            throw ValidationError("node counts must be positive, --top-k and --budget non-negative")
        }
        guard vocabulary >= 64 else { throw ValidationError("--vocabulary must be at least 64") }
    }

    func run() throws {
        var steps = try SyntheticDecodeSteps(
            count: workloads, seed: seed, vocabularySize: vocabulary, draftNodes: draftNodes, retrievalNodes: retrievalNodes,
            topK: topK, budget: budget)
        let inputs = steps.inputs, retrievals = steps.retrievals, rootTops = steps.rootTops, argmaxes = steps.argmaxes
        var workspace = TreeWorkspace()
        var pruned = TokenTree(), fused = TokenTree(), layout = TreeLayout()
        var accepted = AcceptedPath()

        // Shapes of the workloads.
        var shapes = Shapes()
        var layouts: [TreeLayout] = []
        for w in 0..<workloads {
            try steps.coreStep(w)
            shapes.add(retrieval: retrievals[w].count, pruned: steps.pruned.count,
                       union: inputs[w].draft.count + steps.pruned.count, fused: steps.fused, layout: steps.layout)
            layouts.append(steps.layout)
        }

        // Timed steps: each variant once per step, on the same workload.
        var stages = [String: [Double]]()
        func record(_ name: String, _ nanoseconds: Double) { stages[name, default: []].append(nanoseconds) }
        let clock = ContinuousClock()
        func ns(_ d: Duration) -> Double {
            Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
        }
        // The drafter has just written the root row when pruning reads it, so each variant
        // starts with the row in cache (`warm`), and the variants take turns going first.
        var sink: Float = 0
        func warm(_ w: Int) {
            inputs[w].rootDistribution.withUnsafeBufferPointer { row in
                var sum: Float = 0
                for i in stride(from: 0, to: row.count, by: 16) { sum += row[i] }
                sink += sum
            }
        }
        let variantCount = 4
        for step in 0..<runs {
            let w = step % workloads
            let input = inputs[w]
            let retrieval = retrievals[w]
            for turn in 0..<variantCount {
                warm(w)
                switch (step + turn) % variantCount {
                case 0:
                    let t0 = clock.now
                    try workspace.prune(retrieval: retrieval, rootDistribution: input.rootDistribution, topK: topK, into: &pruned)
                    try workspace.fuse(draft: input.draft, retrieval: pruned, budget: budget, into: &fused)
                    workspace.layout(fused, pendingToken: input.pendingToken, into: &layout)
                    record(Variant.total, ns(clock.now - t0))
                case 1:
                    let t0 = clock.now
                    workspace.prune(retrieval: retrieval, rootTop: rootTops[w], into: &pruned)
                    try workspace.fuse(draft: input.draft, retrieval: pruned, budget: budget, into: &fused)
                    workspace.layout(fused, pendingToken: input.pendingToken, into: &layout)
                    record(Variant.totalTopK, ns(clock.now - t0))
                case 2:
                    let t0 = clock.now
                    try workspace.prune(retrieval: retrieval, rootDistribution: input.rootDistribution, topK: topK, into: &pruned)
                    let t1 = clock.now
                    workspace.prune(retrieval: retrieval, rootTop: rootTops[w], into: &pruned)
                    let t2 = clock.now
                    try workspace.fuse(draft: input.draft, retrieval: pruned, budget: budget, into: &fused)
                    let t3 = clock.now
                    workspace.layout(fused, pendingToken: input.pendingToken, into: &layout)
                    let t4 = clock.now
                    try TreeVerification.acceptGreedy(tree: layout, targetArgmax: argmaxes[w], into: &accepted)
                    let t5 = clock.now
                    record(Variant.pruneDense, ns(t1 - t0))
                    record(Variant.pruneTopK, ns(t2 - t1))
                    record(Variant.fuse, ns(t3 - t2))
                    record(Variant.layout, ns(t4 - t3))
                    record(Variant.accept, ns(t5 - t4))
                default:
                    let t0 = clock.now
                    let onePruned = try TokenTree.prune(retrieval: retrieval, rootDistribution: input.rootDistribution, topK: topK)
                    let oneFused = try TokenTree.fuse(draft: input.draft, retrieval: onePruned, budget: budget)
                    let oneLayout = oneFused.layout(pendingToken: input.pendingToken)
                    record(Variant.oneShot, ns(clock.now - t0))
                    guard oneLayout == layouts[w] else {
                        throw ValidationError("internal error: the one-shot API and the workspace disagree on workload \(w)")
                    }
                }
            }
        }
        precondition(sink.isFinite)

        // Steady-state allocations, counted by a separate executable (malloc interposition stays
        // out of rasd-index).
        let allocations = countAllocations()

        print(report(stages: stages, shapes: shapes, allocations: allocations))
    }

    enum Variant {
        static let total = "prune + fuse + layout (dense root row)"
        static let totalTopK = "prune + fuse + layout (drafter's top-k)"
        static let pruneDense = "  prune, dense root row (top-k pass)"
        static let pruneTopK = "  prune, drafter's top-k given"
        static let fuse = "  fuse"
        static let layout = "  layout (mask, paths)"
        static let accept = "greedy acceptance"
        static let oneShot = "prune + fuse + layout, one-shot API"
        static let order = [total, totalTopK, pruneDense, pruneTopK, fuse, layout, accept, oneShot]
    }

    struct Shapes {
        var retrieval: [Int] = [], pruned: [Int] = [], union: [Int] = [], fused: [Int] = [], rows: [Int] = []
        var depth: [Int] = [], leaves: [Int] = [], merged: [Int] = []

        mutating func add(retrieval: Int, pruned: Int, union: Int, fused: TokenTree, layout: TreeLayout) {
            self.retrieval.append(retrieval)
            self.pruned.append(pruned)
            self.union.append(union)
            self.fused.append(fused.count)
            rows.append(layout.count)
            depth.append(Int(fused.depths.max() ?? 0))
            leaves.append(layout.leaves.count)
            merged.append(fused.sources.filter { $0.contains(.draft) && $0 != .draft }.count)
        }
    }

    /// Runs `rasd-allocations` (built next to this executable) on the same workloads; its JSON
    /// line, or an explanation when it cannot run.
    func countAllocations() -> Result<(steps: Int, core: [Int], full: [Int]), ValidationError> {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("rasd-allocations").path
        guard FileManager.default.isExecutableFile(atPath: exe) else {
            return .failure(ValidationError("rasd-allocations is not built next to rasd-index (swift build -c release --product rasd-allocations)"))
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = [workloads, Int(seed), vocabulary, draftNodes, retrievalNodes, topK, budget].map(String.init)
        let pipe = Pipe()
        p.standardOutput = pipe
        do { try p.run() } catch { return .failure(ValidationError("cannot run \(exe): \(error)")) }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        struct Counts: Decodable { var steps: Int; var core: [Int]; var full: [Int] }
        guard p.terminationStatus == 0, let c = try? JSONDecoder().decode(Counts.self, from: data), c.core.count == 2, c.full.count == 2 else {
            return .failure(ValidationError("rasd-allocations failed (status \(p.terminationStatus))"))
        }
        return .success((c.steps, c.core, c.full))
    }

    func report(
        stages: [String: [Double]], shapes: Shapes, allocations: Result<(steps: Int, core: [Int], full: [Int]), ValidationError>
    ) -> String {
        func median(_ xs: [Int]) -> Int { xs.sorted()[xs.count / 2] }
        func quantile(_ xs: [Double], _ q: Double) -> Double {
            let sorted = xs.sorted()
            return sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))]
        }
        func us(_ x: Double) -> String { String(format: "%7.2f", x / 1000) }
        var lines: [String] = []
        lines.append("rasd-index bench trees: the per-step tree work of RASD")
        lines.append("machine: \(Self.machine())")
        lines.append("date: \(ISO8601DateFormatter().string(from: Date()))")
        lines.append("inputs: \(workloads) seeded workloads (seed \(seed)...), draft \(draftNodes) nodes, "
            + "retrieval trie \(median(shapes.retrieval)) nodes, vocabulary \(vocabulary), top-k \(topK), budget \(budget)")
        lines.append("shapes (medians): pruned retrieval \(median(shapes.pruned)) nodes, draft + pruned \(median(shapes.union)) "
            + "nodes before merging, fused \(median(shapes.fused)) (\(median(shapes.merged)) draft nodes also retrieved), "
            + "layout \(median(shapes.rows)) rows, depth \(median(shapes.depth)), \(median(shapes.leaves)) leaves")
        lines.append("")
        lines.append("\(runs) steps per variant, microseconds per step:")
        lines.append("variant".padding(toLength: 44, withPad: " ", startingAt: 0) + " median     p10     p90")
        for name in Variant.order {
            guard let xs = stages[name] else { continue }
            lines.append(name.padding(toLength: 44, withPad: " ", startingAt: 0)
                + "\(us(quantile(xs, 0.5))) \(us(quantile(xs, 0.1))) \(us(quantile(xs, 0.9)))")
        }
        if let total = stages[Variant.total], let oneShot = stages[Variant.oneShot] {
            let ratio = quantile(oneShot, 0.5) / quantile(total, 0.5)
            lines.append(String(format: "one-shot API / workspace: %.2fx", ratio))
            let target = quantile(total, 0.5) <= 10_000 ? "met" : "MISSED"
            lines.append("target: prune + fuse + layout <= 10 us median (dense root row): \(target)")
        }
        lines.append("")
        switch allocations {
        case .success(let a):
            lines.append("allocations in steady state (\(a.steps) steps after warm-up, counted by rasd-allocations):")
            lines.append("  prune + fuse + layout: \(a.core[0]) allocations, \(a.core[1]) bytes")
            lines.append("  full step (refill draft and retrieval trees, prune, fuse, layout, greedy acceptance): "
                + "\(a.full[0]) allocations, \(a.full[1]) bytes")
        case .failure(let e):
            lines.append("allocations: not counted: \(e.message)")
        }
        return lines.joined(separator: "\n")
    }

    static func machine() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }
}

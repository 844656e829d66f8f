import Foundation
import RASDModel

/// Draft step against target step, interleaved in one run on the same context (the machine is
/// shared: only ratios within a run mean anything).
public struct DraftHeadBenchmark {
    /// Medians of one run, in seconds.
    public struct Figures: Codable, Sendable {
        public var context: Int
        public var samples: Int
        /// One target single-token step (`decodeStep`).
        public var targetStep: Double
        /// One head call on one node (the root): a draft step.
        public var headStep: Double
        /// One head call on a tree level of `levelWidth` nodes.
        public var headLevel: Double
        public var levelWidth: Int
        /// A whole dynamic draft tree with a budget of `treeBudget` nodes (every level).
        public var draftTree: Double
        /// Median nodes the dynamic tree kept (fewer than the budget when its expansion stops
        /// at unlikely nodes).
        public var draftTreeNodes: Int
        public var treeBudget: Int
        /// Target verification of the pending token plus a `treeBudget`-node tree.
        public var targetVerify: Double
        public var threads: Int
        /// Threads computing each head call.
        public var headThreads: Int
        /// Whether the head computed on the target's threads rather than its own.
        public var headSharesTargetThreads: Bool
    }

    /// Runs `samples` interleaved rounds after a context of `context` pseudo-random tokens. The
    /// head computes on `headThreads` threads of its own, or with nil on the target's.
    public static func run(
        head: DraftHead, context: Int, samples: Int, levelWidth: Int = 8, treeBudget: Int = 32, threads: Int = 2, headThreads: Int? = nil
    ) throws -> Figures {
        let model = head.target
        let d = model.config.embeddingLength
        let tokens = (0..<context).map { UInt32(($0 * 7919 + 101) % model.config.vocabularySize) }
        let session = try InferenceSession(model: model, capacity: context + treeBudget + 8, threads: threads)
        var states: [Float] = []
        let next = try session.prefill(tokens) { _, chunk in states.append(contentsOf: chunk) }
        let drafter = try headThreads.map { try DraftHeadDrafter(head: head, capacity: context + 256, threads: $0) }
            ?? DraftHeadDrafter(head: head, capacity: context + 256, sharingThreadsOf: session)
        try drafter.begin(prompt: tokens, hiddenStates: states)
        let headSession = drafter.session
        let feature = Array(states.suffix(d))
        let levelFeatures = Array([[Float]](repeating: feature, count: levelWidth).joined())
        let clock = ContinuousClock()
        func time(_ body: () throws -> Void) rethrows -> Double {
            let start = clock.now
            try body()
            let e = clock.now - start
            return Double(e.components.seconds) + Double(e.components.attoseconds) / 1e18
        }
        var target: [Double] = [], step: [Double] = [], level: [Double] = [], tree: [Double] = [], verify: [Double] = []
        var treeNodes: [Double] = []
        for _ in 0..<(samples + 1) {
            target.append(try time { _ = try session.decodeStep(next) })
            try session.truncate(to: context)
            headSession.discardTentative()
            step.append(try time {
                try feature.withUnsafeBufferPointer { try headSession.forward(tokens: [next], features: $0, parents: [-1], logitNodes: [0]) }
            })
            level.append(try time {
                try levelFeatures.withUnsafeBufferPointer {
                    try headSession.forward(
                        tokens: (0..<levelWidth).map { UInt32(100 + $0) }, features: $0, parents: [Int32](repeating: 0, count: levelWidth),
                        logitNodes: Array(0..<levelWidth))
                }
            })
            headSession.discardTentative()
            // The target verifies a full tree of the budget's size (a binary heap; the drafted tree
            // may be smaller), so that the row says what `treeBudget` nodes cost.
            let drafted = (0..<treeBudget).map { UInt32(100 + $0) }, parents = (0..<treeBudget).map { Int32($0 + 1) / 2 - 1 }
            var kept = 0
            tree.append(try time { kept = try drafter.draft(after: next, budget: treeBudget, rootTopK: 8).tree.count })
            treeNodes.append(Double(kept))
            try drafter.begin(prompt: tokens, hiddenStates: states)
            // The target verifies the pending token and the tree.
            verify.append(try time {
                _ = try session.verify(tokens: [next] + drafted, parents: [-1] + parents.map { $0 < 0 ? 0 : $0 + 1 })
            })
            try session.truncate(to: context)
        }
        func median(_ v: [Double]) -> Double {
            let s = v.dropFirst().sorted()  // the first round warms caches up
            return s[s.count / 2]
        }
        return Figures(
            context: context, samples: samples, targetStep: median(target), headStep: median(step), headLevel: median(level),
            levelWidth: levelWidth, draftTree: median(tree), draftTreeNodes: Int(median(treeNodes)), treeBudget: treeBudget, targetVerify: median(verify),
            threads: threads, headThreads: headSession.threadCount, headSharesTargetThreads: headThreads == nil)
    }
}

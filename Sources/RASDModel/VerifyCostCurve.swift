import Foundation

/// How long verifying a tree of `n` nodes takes relative to one single-token step, measured on
/// this engine, this machine and this thread count.
///
/// The decoder chooses its tree budget from this curve: a node is worth adding only when the
/// expected extra accepted tokens pay for its share of the verification time. On a CPU the
/// curve rises quickly (each node is real matrix work); on a GPU it is nearly flat.
public struct VerifyCostCurve: Sendable, Codable, Equatable {
    /// Committed context length the curve was measured after.
    public var contextLength: Int
    /// Threads of the session that was measured.
    public var threads: Int
    /// Kernel path of the session that was measured.
    public var kernels: String
    /// Median seconds of one single-token step (a verify of one node).
    public var singleStepSeconds: Double
    /// Tree sizes measured, ascending.
    public var sizes: [Int]
    /// Median seconds of a verify of each size.
    public var seconds: [Double]
    /// Verify time of each size divided by one single-token step: the median of ratios taken
    /// from back-to-back pairs, so that machine load varying over the run cancels out.
    public var relative: [Double]

    /// Creates a curve from measurements.
    public init(
        contextLength: Int, threads: Int, kernels: String, singleStepSeconds: Double, sizes: [Int], seconds: [Double],
        relative: [Double]
    ) {
        self.contextLength = contextLength
        self.threads = threads
        self.kernels = kernels
        self.singleStepSeconds = singleStepSeconds
        self.sizes = sizes
        self.seconds = seconds
        self.relative = relative
    }

    /// How far the curve departs from what a quiet machine measures: a one-node tree costs one
    /// step (ratio 1), and a larger tree never costs less than a smaller one. The largest of
    /// |ratio(1) - 1| and the relative drops between consecutive sizes; 0 for a clean curve. A
    /// neighbour's burst of work during the measurement shows up here (one cached at 2026-11-28
    /// 02:18 had ratio(1) = 1.41 and 4 nodes cheaper than 3).
    public var inconsistency: Double {
        var worst = 0.0
        if let i = sizes.firstIndex(of: 1), i < relative.count { worst = abs(relative[i] - 1) }
        for i in relative.indices.dropFirst() where relative[i - 1] > 0 {
            worst = max(worst, (relative[i - 1] - relative[i]) / relative[i - 1])
        }
        return worst
    }

    /// Relative cost of a tree of `size` nodes, interpolated linearly between measured sizes and
    /// extrapolated from the last two beyond them.
    public func relativeCost(ofTreeSize size: Int) -> Double {
        let r = relative
        guard let first = sizes.first, !r.isEmpty else { return Double(size) }
        if size <= first { return r[0] * Double(size) / Double(first) }
        for i in 1..<sizes.count where size <= sizes[i] {
            let t = Double(size - sizes[i - 1]) / Double(sizes[i] - sizes[i - 1])
            return r[i - 1] + t * (r[i] - r[i - 1])
        }
        guard sizes.count >= 2 else { return r[0] * Double(size) / Double(first) }
        let n = sizes.count
        let slope = (r[n - 1] - r[n - 2]) / Double(sizes[n - 1] - sizes[n - 2])
        return r[n - 1] + slope * Double(size - sizes[n - 1])
    }

    /// Measures the curve on `session` after committing `context` (the session is reset first
    /// and left holding `context`).
    ///
    /// Trees are binary heaps (node `i`'s parent is `(i - 1) / 2`) of pseudo-random tokens, a
    /// shape between a chain and a star. Each sample times a single-token verify and a verify of
    /// the size back to back; sizes are visited round-robin `repeats` times, and each figure is
    /// a median.
    /// - Throws: ``EngineError`` when the context plus the largest tree does not fit.
    public static func measure(
        session: InferenceSession, context: [UInt32], sizes: [Int] = Array(1...64), repeats: Int = 5
    ) throws -> VerifyCostCurve {
        guard let largest = sizes.max(), sizes.allSatisfy({ $0 > 0 }), repeats > 0 else {
            throw EngineError.invalidArgument("tree sizes must be positive and repeats at least 1")
        }
        session.reset()
        if !context.isEmpty { try session.prefill(context) }
        let vocabulary = session.model.config.vocabularySize
        var tokens: [UInt32] = [], parents: [Int32] = []
        for i in 0..<largest {
            tokens.append(UInt32((i * 7919 + 13) % vocabulary))
            parents.append(i == 0 ? -1 : Int32((i - 1) / 2))
        }
        func time(_ n: Int) throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try session.verify(tokens: Array(tokens.prefix(n)), parents: Array(parents.prefix(n)))
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        let ordered = Array(Set(sizes)).sorted()
        _ = try time(largest)  // warm-up: buffers for the largest tree
        var singles: [Double] = []
        var samples = [[Double]](repeating: [], count: ordered.count)
        var ratios = [[Double]](repeating: [], count: ordered.count)
        for _ in 0..<repeats {
            for (i, n) in ordered.enumerated() {
                let single = try time(1)
                let t = try time(n)
                singles.append(single)
                samples[i].append(t)
                ratios[i].append(t / single)
            }
        }
        return VerifyCostCurve(
            contextLength: context.count, threads: session.threadCount, kernels: session.kernelPath.rawValue,
            singleStepSeconds: median(singles), sizes: ordered, seconds: samples.map(median), relative: ratios.map(median))
    }
}

/// Verify-cost curves measured after several context lengths: every tree row attends to the
/// whole context, so a tree's cost relative to a single step grows with it (on this CPU, 4 rows
/// cost about 1.3 single steps after 64 tokens and 1.9 after 1,024).
public struct VerifyCostModel: Sendable, Codable, Equatable {
    /// The curves, by ascending context length.
    public var curves: [VerifyCostCurve]
    /// How many measurements of the whole model this one was kept from (the most consistent);
    /// nil when not recorded.
    public var measurements: Int?

    /// A model from curves (sorted here by context length).
    public init(curves: [VerifyCostCurve], measurements: Int? = nil) {
        self.curves = curves.sorted { $0.contextLength < $1.contextLength }
        self.measurements = measurements
    }

    /// Relative cost of a tree of `size` nodes after `context` committed tokens: interpolated
    /// linearly in the context between the two nearest curves (the nearest one outside them).
    public func relativeCost(ofTreeSize size: Int, context: Int) -> Double {
        guard let first = curves.first, let last = curves.last else { return Double(size) }
        if context <= first.contextLength || curves.count == 1 { return first.relativeCost(ofTreeSize: size) }
        if context >= last.contextLength { return last.relativeCost(ofTreeSize: size) }
        for i in 1..<curves.count where context <= curves[i].contextLength {
            let a = curves[i - 1], b = curves[i]
            let t = Double(context - a.contextLength) / Double(b.contextLength - a.contextLength)
            return a.relativeCost(ofTreeSize: size) + t * (b.relativeCost(ofTreeSize: size) - a.relativeCost(ofTreeSize: size))
        }
        return last.relativeCost(ofTreeSize: size)
    }

    /// The largest ``VerifyCostCurve/inconsistency`` of the curves.
    public var inconsistency: Double { curves.map(\.inconsistency).max() ?? 0 }

    /// Measures a curve after each of `contexts` committed tokens on `session` (see
    /// ``VerifyCostCurve/measure(session:context:sizes:repeats:)``); the session is left
    /// holding the last context.
    /// - Throws: ``EngineError`` when a context plus the largest tree does not fit.
    public static func measure(
        session: InferenceSession, contexts: [Int], sizes: [Int], repeats: Int
    ) throws -> VerifyCostModel {
        let vocabulary = session.model.config.vocabularySize
        return VerifyCostModel(curves: try contexts.map { length in
            let context = (0..<length).map { UInt32(($0 * 31 + 7) % vocabulary) }
            return try VerifyCostCurve.measure(session: session, context: context, sizes: sizes, repeats: repeats)
        })
    }
}

/// The median of `values` (0 for none).
public func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

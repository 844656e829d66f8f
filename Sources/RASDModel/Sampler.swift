import Foundation

/// Chooses the next token from logits: greedy, or temperature and nucleus (top-p) sampling
/// with a seeded generator, so a run can be repeated exactly.
public struct Sampler: Sendable {
    /// 0 means greedy (argmax, smallest id on ties).
    public var temperature: Float
    /// Keep the smallest set of most likely tokens whose probability reaches this (1 keeps all).
    public var topP: Float
    private var state: UInt64

    /// Creates a sampler.
    /// - Throws: ``EngineError/invalidArgument(_:)`` for a negative temperature or `topP`
    ///   outside (0, 1].
    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) throws {
        guard temperature >= 0, temperature.isFinite else {
            throw EngineError.invalidArgument("temperature \(temperature) must be 0 (greedy) or positive")
        }
        guard topP > 0, topP <= 1 else { throw EngineError.invalidArgument("top-p \(topP) must be in (0, 1]") }
        self.temperature = temperature
        self.topP = topP
        state = seed
    }

    /// Whether the sampler always picks the argmax.
    public var isGreedy: Bool { temperature == 0 }

    /// The index of the largest value (the smallest index among equal maxima).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> UInt32 {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return UInt32(best)
    }

    /// Picks a token from `logits`.
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> UInt32 {
        guard !isGreedy, logits.count > 1 else { return Self.argmax(logits) }
        let maximum = logits.max() ?? 0
        var weights = logits.map { expf(($0 - maximum) / temperature) }
        var order = Array(weights.indices)
        if topP < 1 {
            order.sort { weights[$0] > weights[$1] || (weights[$0] == weights[$1] && $0 < $1) }
            let total = weights.reduce(0, +)
            var kept: Float = 0
            var cut = order.count
            for (rank, i) in order.enumerated() {
                kept += weights[i]
                if kept >= topP * total {
                    cut = rank + 1
                    break
                }
            }
            for i in order[cut...] { weights[i] = 0 }
            order.removeSubrange(cut...)
        }
        let total = order.reduce(Float(0)) { $0 + weights[$1] }
        var target = Float(nextUnit()) * total
        for i in order {
            target -= weights[i]
            if target <= 0 { return UInt32(i) }
        }
        return UInt32(order.last ?? 0)
    }

    /// A uniform number in [0, 1) from SplitMix64.
    private mutating func nextUnit() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}

import RASDGGUF
import RASDModel

/// The reference model, loaded once for all tests.
enum Fixtures {
    static let model: Result<LlamaModel, Error> = Result { try LlamaModel(path: ReferenceModel.existingPath()) }

    /// A chat-shaped prompt: the default system turn, a user turn of mixed words, the assistant header.
    static let chatPrompt: [UInt32] = [
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2,
        198, 1, 4093, 198, 11147, 253, 1789, 2203, 288, 3187, 253, 1380, 282, 7214, 30, 2, 198, 1, 520, 9531, 198,
    ]

    /// A deterministic pseudo-random sequence of ids below `bound` (SplitMix64).
    static func randomTokens(count: Int, seed: UInt64, bound: UInt32 = 49152) -> [UInt32] {
        var rng = SplitMix(seed: seed)
        return (0..<count).map { _ in UInt32(rng.next() % UInt64(bound)) }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

extension Array where Element == Float {
    /// Bit patterns, so comparisons are exact (and NaN-safe).
    var bits: [UInt32] { map(\.bitPattern) }
}

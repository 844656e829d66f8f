import Foundation
import RASDModel
import Testing

/// The Swift head against the training framework: scripts/draft-head/make_golden.py ran the JAX
/// model of scripts/draft-head/head.py (the one training uses) on the head's own dequantized
/// weights and fixed inputs, once as trained ("float") and once with every matrix product's
/// input rounded to 8 bits per 32 values as the engine's integer kernels do ("engine").
///
/// Tolerances: against "engine", the same arithmetic up to float summation order (and the F16
/// rounding of one Q4_1 correction term): features and probabilities within 1e-4 (measured with
/// the shipped head: 1.5e-5 and 1.7e-5), the same top token. Against "float", the 8-bit
/// activations' own error, which scales with the features (RMS about 1.9, outliers up to 34):
/// every node's feature error, as an RMS, within 2% of its feature's RMS (measured: at most
/// 0.77%), probabilities within 0.05 (measured: 0.024), the same top token wherever the float
/// model's top two differ by more than 0.05.
@Suite struct GoldenTests {
    struct Outputs: Decodable {
        var predicted: [[Float]]
        var topTokens: [[UInt32]]
        var topProbabilities: [[Float]]
    }

    struct Golden: Decodable {
        var head: String
        var headSHA256: String
        var tokens: [UInt32]
        var features: [[Float]]
        var float: Outputs
        var engine: Outputs
    }

    static func golden() throws -> Golden {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/golden-draft-head.json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    /// Worst feature difference (largest absolute, and largest RMS relative to the reference
    /// feature's RMS) and worst probability difference against `reference`; checks the top token
    /// where the reference's top two differ by more than `margin`.
    func compare(_ session: DraftHeadSession, _ head: DraftHead, _ reference: Outputs, margin: Float) throws -> (Float, Float, Float) {
        let d = head.config.embeddingLength, v = head.vocabulary.count
        var worstFeature: Float = 0, worstRelative: Float = 0, worstProbability: Float = 0
        for i in reference.predicted.indices {
            var error: Float = 0, size: Float = 0
            for j in 0..<d {
                let diff = session.predictedFeatures[i * d + j] - reference.predicted[i][j]
                worstFeature = max(worstFeature, abs(diff))
                error += diff * diff
                size += reference.predicted[i][j] * reference.predicted[i][j]
            }
            worstRelative = max(worstRelative, (error / size).squareRoot())
            let row = Array(session.probabilities[(i * v)..<((i + 1) * v)])
            for (t, p) in zip(reference.topTokens[i], reference.topProbabilities[i]) {
                let index = try #require(head.vocabulary.firstIndex(of: t))
                worstProbability = max(worstProbability, abs(row[index] - p))
            }
            if reference.topProbabilities[i][0] - reference.topProbabilities[i][1] > margin {
                let best = try #require(row.indices.max { row[$0] < row[$1] })
                #expect(head.vocabulary[best] == reference.topTokens[i][0], "node \(i)")
            }
        }
        return (worstFeature, worstRelative, worstProbability)
    }

    @Test func swiftHeadEqualsJAXOnFixedInputs() throws {
        let f = try fixture()
        let g = try Self.golden()
        try #require(URL(fileURLWithPath: f.head.path).lastPathComponent == g.head, "golden outputs are for \(g.head); rerun scripts/draft-head/make_golden.py")
        let session = try DraftHeadSession(head: f.head, capacity: 64, threads: 2)
        let n = g.tokens.count
        try g.features.flatMap { $0 }.withUnsafeBufferPointer {
            try session.forward(tokens: g.tokens, features: $0, parents: (0..<n).map { Int32($0) - 1 }, logitNodes: Array(0..<n))
        }
        let (engineFeature, _, engineProbability) = try compare(session, f.head, g.engine, margin: 0)
        #expect(engineFeature <= 1e-4, "largest feature difference from the engine-arithmetic JAX model: \(engineFeature)")
        #expect(engineProbability <= 1e-4, "largest probability difference from the engine-arithmetic JAX model: \(engineProbability)")
        let (floatFeature, floatRelative, floatProbability) = try compare(session, f.head, g.float, margin: 0.05)
        print("draft head vs JAX: engine arithmetic \(engineFeature) (features), \(engineProbability) (probabilities); "
              + "float \(floatFeature) (features; relative RMS \(floatRelative)), \(floatProbability)")
        #expect(floatRelative <= 0.02, "largest relative feature error against the float JAX model: \(floatRelative)")
        #expect(floatProbability <= 0.05, "largest probability difference from the float JAX model: \(floatProbability)")
    }
}

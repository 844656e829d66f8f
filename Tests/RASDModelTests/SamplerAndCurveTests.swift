import Foundation
import RASDModel
import Testing

@Suite struct SamplerAndCurveTests {
    @Test func greedyAndNucleusPickTheArgmax() throws {
        let logits: [Float] = [0.5, 3, 3, -1]
        try logits.withUnsafeBufferPointer { l in
            var greedy = try Sampler()
            #expect(greedy.sample(l) == 1)  // ties go to the smaller id
            var narrow = try Sampler(temperature: 1, topP: 1e-6, seed: 9)
            for _ in 0..<50 { #expect(narrow.sample(l) == 1) }  // the nucleus is the single most likely token
        }
        #expect(throws: EngineError.self) { try Sampler(temperature: -1) }
        #expect(throws: EngineError.self) { try Sampler(topP: 0) }
    }

    @Test func samplingFollowsTheSoftmaxAndRepeatsWithItsSeed() throws {
        let logits: [Float] = [log(1), log(2), log(7)]  // probabilities 0.1, 0.2, 0.7
        try logits.withUnsafeBufferPointer { l in
            var a = try Sampler(temperature: 1, seed: 42), b = try Sampler(temperature: 1, seed: 42)
            var counts = [0, 0, 0]
            for _ in 0..<20_000 {
                let x = a.sample(l)
                #expect(x == b.sample(l))
                counts[Int(x)] += 1
            }
            for (i, p) in [0.1, 0.2, 0.7].enumerated() {
                #expect(abs(Double(counts[i]) / 20_000 - p) < 0.015, "token \(i): \(counts[i])")
            }
            // top-p 0.75 keeps tokens 2 and 1 (0.7 + 0.2), never token 0.
            var nucleus = try Sampler(temperature: 1, topP: 0.75, seed: 1)
            for _ in 0..<2_000 { #expect(nucleus.sample(l) != 0) }
        }
    }

    @Test func costCurveInterpolatesAndExtrapolates() {
        let curve = VerifyCostCurve(
            contextLength: 0, threads: 2, kernels: "test", singleStepSeconds: 0.01, sizes: [1, 2, 4, 8],
            seconds: [0.01, 0.012, 0.016, 0.03], relative: [1, 1.2, 1.6, 3])
        #expect(curve.relativeCost(ofTreeSize: 1) == 1)
        #expect(abs(curve.relativeCost(ofTreeSize: 3) - 1.4) < 1e-12)
        #expect(abs(curve.relativeCost(ofTreeSize: 6) - 2.3) < 1e-12)
        #expect(abs(curve.relativeCost(ofTreeSize: 10) - 3.7) < 1e-12)  // slope 0.35 per node beyond 8
    }

    @Test func costModelInterpolatesInTheContext() {
        func curve(_ context: Int, _ relative: [Double]) -> VerifyCostCurve {
            VerifyCostCurve(
                contextLength: context, threads: 2, kernels: "test", singleStepSeconds: 0.01, sizes: [1, 4],
                seconds: relative.map { $0 * 0.01 }, relative: relative)
        }
        // Given out of order: the model sorts its curves by context.
        let model = VerifyCostModel(curves: [curve(1000, [1, 2.5]), curve(100, [1, 1.3])])
        #expect(model.curves.map(\.contextLength) == [100, 1000])
        #expect(abs(model.relativeCost(ofTreeSize: 4, context: 100) - 1.3) < 1e-12)
        #expect(abs(model.relativeCost(ofTreeSize: 4, context: 550) - 1.9) < 1e-12)  // halfway
        #expect(abs(model.relativeCost(ofTreeSize: 4, context: 10) - 1.3) < 1e-12)   // nearest outside
        #expect(abs(model.relativeCost(ofTreeSize: 4, context: 5000) - 2.5) < 1e-12)
        #expect(abs(model.relativeCost(ofTreeSize: 2, context: 1000) - 1.5) < 1e-12)  // within the curve
        #expect(VerifyCostModel(curves: []).relativeCost(ofTreeSize: 3, context: 10) == 3)
    }

    /// A curve measured in a busy moment is recognised: a one-node ratio away from 1, or a
    /// larger tree measured cheaper than a smaller one.
    @Test func inconsistentCurvesAreRecognised() {
        func curve(_ relative: [Double]) -> VerifyCostCurve {
            VerifyCostCurve(
                contextLength: 64, threads: 2, kernels: "test", singleStepSeconds: 0.01, sizes: [1, 2, 3, 4],
                seconds: relative.map { $0 * 0.01 }, relative: relative)
        }
        #expect(curve([1, 1.1, 1.3, 1.5]).inconsistency == 0)
        #expect(abs(curve([1.41, 1.5, 1.6, 1.7]).inconsistency - 0.41) < 1e-12)
        #expect(abs(curve([1, 1.2, 1.6, 1.2]).inconsistency - 0.25) < 1e-12)  // 4 nodes 25% cheaper than 3
        #expect(abs(curve([0.98, 1.2, 1.6, 1.7]).inconsistency - 0.02) < 1e-12)
        let model = VerifyCostModel(curves: [curve([1, 1.1, 1.3, 1.5]), curve([1, 1.3, 1.2, 1.5])])
        #expect(abs(model.inconsistency - 0.1 / 1.3) < 1e-12)
    }

    @Test func measuredCurveCoversTheSizesAndLeavesTheContext() throws {
        let model = try Fixtures.model.get()
        let session = try InferenceSession(model: model, capacity: 64, threads: 2)
        let context = Array(Fixtures.chatPrompt.prefix(16))
        let curve = try VerifyCostCurve.measure(session: session, context: context, sizes: [1, 4, 8], repeats: 2)
        #expect(curve.sizes == [1, 4, 8] && curve.seconds.count == 3 && curve.relative.count == 3)
        #expect(curve.seconds.allSatisfy { $0 > 0 } && curve.singleStepSeconds > 0)
        #expect(session.committedTokens == context)
    }

    @Test func rooflineFloorIsOneUntilArithmeticOutgrowsTheWeightStream() {
        // 1 GB/s over 1 GB of weights: 1 s per pass; 1 G multiply-adds per token at 4 G/s: 0.25 s.
        let roofline = MatrixRoofline(
            multiplyAddsPerSecond: 4e9, batch: 16, bytesPerSecond: 1e9, multiplyAddsPerToken: 1e9, weightBytes: 1e9)
        #expect(roofline.floor(tokens: 1) == 1)
        #expect(roofline.floor(tokens: 4) == 1)  // 1 s of arithmetic, still the 1 s pass
        #expect(roofline.floor(tokens: 8) == 2)
        #expect(roofline.floor(tokens: 16) == 4)
    }

    @Test func measuredRooflineCountsEveryMatrix() throws {
        let model = try Fixtures.model.get()
        let session = try InferenceSession(model: model, capacity: 64, threads: 2)
        let roofline = session.measureMatrixRoofline(batch: 4, repeats: 1)
        let c = model.config
        let qWidth = c.headCount * c.headDimension
        let perLayer = c.embeddingLength * (qWidth + 2 * c.kvWidth) + qWidth * c.embeddingLength
            + 3 * c.embeddingLength * c.feedForwardLength
        #expect(roofline.multiplyAddsPerToken == Double(c.layerCount * perLayer + c.vocabularySize * c.embeddingLength))
        if model.tiedEmbeddings { #expect(roofline.weightBytes == Double(model.weightBytes)) }  // the head is the table
        #expect(roofline.batch == 4 && roofline.multiplyAddsPerSecond > 0 && roofline.bytesPerSecond > 0)
    }
}

import RASDGGUF
import RASDModel
import Testing

@Suite struct ConfigTests {
    @Test func readsTheReferenceModelConfig() throws {
        let file = try GGUFFile(path: ReferenceModel.existingPath())
        let c = try LlamaConfig(file: file)
        #expect(c.layerCount == 30 && c.embeddingLength == 576 && c.feedForwardLength == 1536)
        #expect(c.headCount == 9 && c.kvHeadCount == 3 && c.headDimension == 64 && c.ropeDimensionCount == 64)
        #expect(c.ropeFrequencyBase == 100_000 && c.contextLength == 8192 && c.vocabularySize == 49152)
        #expect(abs(c.normEpsilon - 1e-5) < 1e-9)
    }
}

import Foundation
import RASDGGUF
import RASDModel
import Testing

/// Writes a minimal GGUF v3 file: metadata strings/integers/floats and tensors of given types.
private struct TinyGGUF {
    var kv: [(String, UInt32, [UInt8])] = []
    var tensors: [(String, [UInt64], UInt32, Int)] = []  // name, dims, type, byte count

    private static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    private static func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func string(_ k: String, _ v: String) { kv.append((k, 8, Self.str(v))) }
    mutating func int(_ k: String, _ v: UInt32) { kv.append((k, 4, Self.le(v))) }
    mutating func float(_ k: String, _ v: Float) { kv.append((k, 6, Self.le(v.bitPattern))) }

    func write() throws -> String {
        var b = Array("GGUF".utf8) + Self.le(UInt32(3)) + Self.le(UInt64(tensors.count)) + Self.le(UInt64(kv.count))
        for (k, t, v) in kv { b += Self.str(k) + Self.le(t) + v }
        var offset = 0
        for (name, dims, type, bytes) in tensors {
            b += Self.str(name) + Self.le(UInt32(dims.count))
            for d in dims { b += Self.le(d) }
            b += Self.le(type) + Self.le(UInt64(offset))
            offset += (bytes + 31) / 32 * 32
        }
        while b.count % 32 != 0 { b.append(0) }
        b += [UInt8](repeating: 0, count: offset)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-model-\(UUID().uuidString).gguf").path
        try Data(b).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A one-layer Llama shape (width 32) whose `blk.0.attn_q.weight` has type `qType`.
    static func llama(architecture: String = "llama", qType: UInt32 = 0) -> TinyGGUF {
        var g = TinyGGUF()
        g.string("general.architecture", architecture)
        let p = architecture + "."
        g.int(p + "block_count", 1); g.int(p + "embedding_length", 32); g.int(p + "feed_forward_length", 64)
        g.int(p + "attention.head_count", 2); g.int(p + "attention.head_count_kv", 1)
        g.int(p + "context_length", 64); g.int(p + "vocab_size", 16)
        g.float(p + "attention.layer_norm_rms_epsilon", 1e-5)
        func f32(_ name: String, _ dims: [UInt64]) -> (String, [UInt64], UInt32, Int) {
            (name, dims, 0, Int(dims.reduce(1, *)) * 4)
        }
        let qBytes = qType == 6 ? 32 * 32 / 32 * 22 : 32 * 32 * 4
        g.tensors = [
            f32("token_embd.weight", [32, 16]), f32("output_norm.weight", [32]),
            f32("blk.0.attn_norm.weight", [32]), ("blk.0.attn_q.weight", [32, 32], qType, qBytes),
            f32("blk.0.attn_k.weight", [32, 16]), f32("blk.0.attn_v.weight", [32, 16]),
            f32("blk.0.attn_output.weight", [32, 32]), f32("blk.0.ffn_norm.weight", [32]),
            f32("blk.0.ffn_gate.weight", [32, 64]), f32("blk.0.ffn_up.weight", [32, 64]),
            f32("blk.0.ffn_down.weight", [64, 32]),
        ]
        return g
    }
}

@Suite struct EngineErrorTests {
    @Test func tinyF32ModelLoadsAndRuns() throws {
        let path = try TinyGGUF.llama().write()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try LlamaModel(path: path)
        #expect(model.tiedEmbeddings && model.config.headDimension == 16)
        let session = try InferenceSession(model: model, capacity: 8, threads: 1)
        // All-zero weights: logits are all zero and the argmax is token 0.
        #expect(try session.prefill([1, 2, 3]) == 0)
        #expect(try session.lastLogits() == [Float](repeating: 0, count: 16))
    }

    @Test func unsupportedArchitectureAndTensorTypeAreNamed() throws {
        let gpt2 = try TinyGGUF.llama(architecture: "gpt2").write()
        defer { try? FileManager.default.removeItem(atPath: gpt2) }
        let e1 = try #require(throws: GGUFError.self) { try LlamaModel(path: gpt2) }
        #expect(e1.kind == .unsupportedArchitecture && e1.description.contains("gpt2"))

        let q5 = try TinyGGUF.llama(qType: 6).write()  // Q5_0
        defer { try? FileManager.default.removeItem(atPath: q5) }
        let e2 = try #require(throws: GGUFError.self) { try LlamaModel(path: q5) }
        #expect(e2.kind == .unsupportedTensorType && e2.description.contains("blk.0.attn_q.weight") && e2.description.contains("Q5_0"))

        var missing = TinyGGUF.llama()
        missing.tensors.removeAll { $0.0 == "blk.0.ffn_up.weight" }
        let p3 = try missing.write()
        defer { try? FileManager.default.removeItem(atPath: p3) }
        let e3 = try #require(throws: GGUFError.self) { try LlamaModel(path: p3) }
        #expect(e3.kind == .missingTensor && e3.description.contains("blk.0.ffn_up.weight"))
    }

    @Test func badRequestsGetClearErrors() throws {
        let model = try Fixtures.model.get()
        let session = try InferenceSession(model: model, capacity: 8, threads: 1)
        #expect(throws: EngineError.tokenOutOfRange(token: 49152, vocabularySize: 49152)) { try session.prefill([49152]) }
        #expect(throws: EngineError.contextFull(needed: 9, capacity: 8)) { try session.prefill([UInt32](repeating: 1, count: 9)) }
        #expect(throws: EngineError.self) { try session.verify(tokens: [1, 2], parents: [-1, 1]) }
        #expect(throws: EngineError.self) { try session.verify(tokens: [1, 2], parents: [-1]) }
        #expect(throws: EngineError.self) { try session.verify(tokens: [], parents: []) }
        _ = try session.verify(tokens: [1, 2, 3], parents: [-1, 0, -1])
        #expect(throws: EngineError.self) { try session.commit(path: [0, 2]) }  // 2 is not a child of 0
        #expect(throws: EngineError.self) { try session.commit(path: [1]) }  // 1 is not a root
        try session.commit(path: [0, 1])
        #expect(session.committedTokens == [1, 2])
        #expect(throws: EngineError.self) { try session.commit(path: [0]) }  // nothing left to commit
        #expect(throws: EngineError.self) { try session.truncate(to: 3) }
        #expect(throws: EngineError.self) { try InferenceSession(model: model, capacity: 100_000) }
        #expect(throws: EngineError.self) { try KernelPath.named("neon") }
    }
}

import Foundation
import RASDGGUF
import Testing

/// Writes a small GGUF v3 file by hand, independently of the reader under test.
private struct GGUFWriter {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func header(tensors: UInt64, kvs: UInt64) { bytes += Array("GGUF".utf8); u32(3); u64(tensors); u64(kvs) }
}

private func temporaryFile(_ bytes: [UInt8]) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-gguf-\(UUID().uuidString).gguf").path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// A file with one metadata entry of every scalar type, an array, and one F32 tensor.
private func sampleFile() -> [UInt8] {
    var w = GGUFWriter()
    w.header(tensors: 1, kvs: 6)
    w.string("general.architecture"); w.u32(8); w.string("llama")
    w.string("a.u32"); w.u32(4); w.u32(7)
    w.string("a.f32"); w.u32(6); w.u32(Float(1.5).bitPattern)
    w.string("a.bool"); w.u32(7); w.bytes.append(1)
    w.string("a.i64"); w.u32(11); w.u64(UInt64(bitPattern: -3))
    w.string("a.strings"); w.u32(9); w.u32(8); w.u64(2); w.string("x"); w.string("yz")
    w.string("t"); w.u32(2); w.u64(2); w.u64(3); w.u32(0); w.u64(0)
    while w.bytes.count % 32 != 0 { w.bytes.append(0) }
    for i in 0..<6 { w.u32(Float(i).bitPattern) }
    return w.bytes
}

@Suite struct GGUFFileTests {
    @Test func parsesEveryValueTypeAndTensorData() throws {
        let path = try temporaryFile(sampleFile())
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try GGUFFile(path: path)
        #expect(file.version == 3)
        #expect(file.metadataKeys == ["general.architecture", "a.u32", "a.f32", "a.bool", "a.i64", "a.strings"])
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.integer("a.u32") == 7)
        #expect(try file.double("a.f32") == 1.5)
        #expect(file.metadata["a.bool"]?.bool == true)
        #expect(try file.integer("a.i64") == -3)
        #expect(try file.stringArray("a.strings") == ["x", "yz"])
        let t = try #require(file.tensor(named: "t"))
        #expect(t.dimensions == [2, 3] && t.type == .f32 && t.byteCount == 24)
        let data = try file.tensorData(t)
        #expect((0..<6).map { data.load(fromByteOffset: $0 * 4, as: Float.self) } == [0, 1, 2, 3, 4, 5])
    }

    @Test func everyTruncationIsReportedNotCrashed() throws {
        let full = sampleFile()
        for cut in 0..<full.count {
            let path = try temporaryFile(Array(full[0..<cut]))
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(throws: GGUFError.self) { try GGUFFile(path: path) }
        }
    }

    @Test func typeErrorsNameTheKey() throws {
        let path = try temporaryFile(sampleFile())
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try GGUFFile(path: path)
        let error = try #require(throws: GGUFError.self) { try file.string("a.u32") }
        #expect(error.kind == .missingMetadata && error.description.contains("a.u32"))
        let absent = try #require(throws: GGUFError.self) { try file.integer("tokenizer.ggml.bos_token_id") }
        #expect(absent.description.contains("is missing"))
    }

    @Test func foreignAndBrokenFilesAreRejected() throws {
        var notGGUF = Array("PK\u{3}\u{4} this is a zip".utf8)
        notGGUF += [UInt8](repeating: 0, count: 64)
        let p1 = try temporaryFile(notGGUF)
        defer { try? FileManager.default.removeItem(atPath: p1) }
        #expect((try? GGUFFile(path: p1)) == nil)
        #expect(throws: GGUFError(.notGGUF, path: p1, "not a GGUF file (bad magic)")) { try GGUFFile(path: p1) }

        var w = GGUFWriter()
        w.header(tensors: 0, kvs: 1)
        w.string("k"); w.u32(99); w.u32(0)
        let p2 = try temporaryFile(w.bytes)
        defer { try? FileManager.default.removeItem(atPath: p2) }
        let e2 = try #require(throws: GGUFError.self) { try GGUFFile(path: p2) }
        #expect(e2.kind == .malformed)

        var v = GGUFWriter()
        v.bytes += Array("GGUF".utf8); v.u32(1); v.u64(0); v.u64(0)
        let p3 = try temporaryFile(v.bytes)
        defer { try? FileManager.default.removeItem(atPath: p3) }
        let e3 = try #require(throws: GGUFError.self) { try GGUFFile(path: p3) }
        #expect(e3.kind == .unsupportedVersion)

        let e4 = try #require(throws: GGUFError.self) { try GGUFFile(path: "/nonexistent/model.gguf") }
        #expect(e4.kind == .io && e4.description.contains("/nonexistent/model.gguf"))
    }

    @Test func readsTheReferenceModel() throws {
        let file = try GGUFFile(path: ReferenceModel.existingPath())
        #expect(file.version == 3)
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.integer("llama.block_count") == 30)
        #expect(try file.integer("llama.embedding_length") == 576)
        #expect(try file.integer("llama.attention.head_count") == 9)
        #expect(try file.integer("llama.attention.head_count_kv") == 3)
        #expect(try file.stringArray("tokenizer.ggml.tokens").count == 49152)
        let q = try #require(file.tensor(named: "blk.0.attn_q.weight"))
        #expect(q.type == .q4_1 && q.dimensions == [576, 576])
        // The last tensor ends inside the file and the whole table is in bounds.
        let end = file.tensors.map { file.dataOffset + $0.offset + $0.byteCount }.max() ?? 0
        #expect(end <= file.file.bytes.count)
    }

    @Test func truncatedReferenceModelIsReportedAsTruncated() throws {
        let source = try ReferenceModel.existingPath()
        let whole = try Data(contentsOf: URL(fileURLWithPath: source), options: .alwaysMapped)
        for fraction in [0.001, 0.02, 0.5, 0.999] {
            let path = try temporaryFile(Array(whole.prefix(Int(Double(whole.count) * fraction))))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let error = try #require(throws: GGUFError.self) { try GGUFFile(path: path) }
            #expect(error.kind == .truncated, "cut at \(fraction): \(error)")
        }
    }
}

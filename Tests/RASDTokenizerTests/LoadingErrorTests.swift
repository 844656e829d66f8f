import Foundation
import RASDGGUF
import RASDTokenizer
import Testing

/// Bad tokenizer inputs fail with a typed error naming the file and what to do.
@Suite struct LoadingErrorTests {
    private func ggufWithTokenizer(model: String = "gpt2", pre: String? = "smollm") -> [(String, GGUFWriter.Value)] {
        let (tokens, merges) = tinyVocabulary()
        var kvs: [(String, GGUFWriter.Value)] = [
            ("general.architecture", .string("llama")),
            ("tokenizer.ggml.model", .string(model)),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.merges", .strings(merges)),
            ("tokenizer.ggml.token_type", .int32s(tokens.indices.map { $0 == tokens.count - 1 ? 3 : 1 })),
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(tokens.count - 1))),
        ]
        if let pre { kvs.append(("tokenizer.ggml.pre", .string(pre))) }
        return kvs
    }

    private func load(_ kvs: [(String, GGUFWriter.Value)]) throws -> Tokenizer {
        let path = try writeTemporary(GGUFWriter.file(kvs), name: "t.gguf")
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try Tokenizer(contentsOf: path)
    }

    @Test func aHandWrittenGGUFTokenizerWorks() throws {
        let t = try load(ggufWithTokenizer())
        #expect(t.vocabularySize == 263)
        #expect(t.encode("hello world") == [259, 261] + Array("rld".utf8).map { UInt32(tinyByteID($0)) })
        #expect(t.encode("hello<|end|>12") == [259, 262, UInt32(tinyByteID(0x31)), UInt32(tinyByteID(0x32))])
        #expect(t.eosToken == 262 && t.bosToken == nil && !t.addsBOSToken)
        #expect(try t.decode(t.encode("hello world<|end|>")) == "hello world<|end|>")
    }

    /// Id of a byte's token in the tiny vocabulary (bytes come first, in byte order).
    private func tinyByteID(_ b: UInt8) -> Int { Int(b) }

    @Test func ggufWithoutTokenizerMetadata() throws {
        let error = try #require(throws: TokenizerError.self) { try load([("general.architecture", .string("llama"))]) }
        #expect(error.kind == .missingTokenizerMetadata)
        #expect(error.description.contains(".gguf") && error.description.contains("tokenizer"))
    }

    @Test func ggufWithPartialTokenizerMetadata() throws {
        var kvs = ggufWithTokenizer()
        kvs.removeAll { $0.0 == "tokenizer.ggml.merges" }
        let error = try #require(throws: TokenizerError.self) { try load(kvs) }
        #expect(error.kind == .missingTokenizerMetadata && error.message.contains("tokenizer.ggml.merges"))
    }

    @Test func unknownPreTokenizerName() throws {
        let error = try #require(throws: TokenizerError.self) { try load(ggufWithTokenizer(pre: "llama-bpe")) }
        #expect(error.kind == .unknownPreTokenizer)
        #expect(error.description.contains("llama-bpe") && error.description.contains("smollm"))
        let missing = try #require(throws: TokenizerError.self) { try load(ggufWithTokenizer(pre: nil)) }
        #expect(missing.kind == .unknownPreTokenizer)
    }

    @Test func sentencePieceModelIsRefused() throws {
        let error = try #require(throws: TokenizerError.self) { try load(ggufWithTokenizer(model: "llama")) }
        #expect(error.kind == .unsupportedModel && error.description.contains("llama"))
    }

    @Test func truncatedGGUFAnywhere() throws {
        // The real model cut inside the tokenizer metadata, and cut inside the tensor data.
        let model = try ReferenceModel.existingPath()
        let handle = try #require(FileHandle(forReadingAtPath: model))
        let head = try #require(try handle.read(upToCount: 3 << 20))
        try handle.close()
        for cut in [100, 200_000, 1 << 20, 3 << 20] {
            let path = try writeTemporary(Array(head.prefix(cut)), name: "cut\(cut).gguf")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let error = try #require(throws: TokenizerError.self) { try Tokenizer(contentsOf: path) }
            #expect(error.kind == .truncatedFile, "cut at \(cut): \(error)")
            #expect(error.description.contains("fetch"))
        }
    }

    @Test func missingUnreadableAndForeignFiles() throws {
        let missing = try #require(throws: TokenizerError.self) { try Tokenizer(contentsOf: "/nonexistent/model.gguf") }
        #expect(missing.kind == .io && missing.description.contains("/nonexistent/model.gguf"))
        let text = try writeTemporary(Array("just some text\n".utf8), name: "notes.txt")
        defer { try? FileManager.default.removeItem(atPath: text) }
        let foreign = try #require(throws: TokenizerError.self) { try Tokenizer(contentsOf: text) }
        #expect(foreign.kind == .unrecognizedFormat)
        let wrongJSON = try writeTemporary(Array(#"{"model": {"type": "Unigram", "vocab": [], "merges": []}}"#.utf8), name: "tokenizer.json")
        defer { try? FileManager.default.removeItem(atPath: wrongJSON) }
        #expect(throws: TokenizerError.self) { try Tokenizer(contentsOf: wrongJSON) }
    }

    @Test func decodingIDsOutOfRange() throws {
        let t = referenceTokenizer
        let error = try #require(throws: TokenizerError.self) { try t.decode([28120, 49152, 905]) }
        #expect(error.kind == .tokenOutOfRange)
        #expect(error.message.contains("49152") && error.message.contains("position 1"))
        var stream = StreamingDecoder(tokenizer: t)
        #expect(throws: TokenizerError.self) { try stream.append(UInt32.max) }
    }
}

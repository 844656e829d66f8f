import Foundation
import RASDGGUF
import RASDTokenizer
import Testing

/// Loading from a Hugging Face tokenizer.json, and the fingerprint.
@Suite struct TokenizerJSONTests {
    /// SmolLM2's tokenizer as a tokenizer.json, written from the GGUF's own metadata through
    /// the GGUF reader (not through RASDTokenizer), in the format `tokenizers` saves.
    static func smolLM2JSON(digits: Bool = true, mergesAsPairs: Bool = false, editMerges: ((inout [String]) -> Void)? = nil) throws -> [String: Any] {
        let gguf = try GGUFFile(path: try ReferenceModel.existingPath())
        let tokens = try gguf.stringArray("tokenizer.ggml.tokens")
        let types = try gguf.integerArray("tokenizer.ggml.token_type")
        var merges = try gguf.stringArray("tokenizer.ggml.merges")
        editMerges?(&merges)
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let pre: [String: Any] = digits
            ? ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
            : byteLevel
        return [
            "version": "1.0",
            "added_tokens": tokens.indices.filter { types[$0] == 3 }.map { ["id": $0, "content": tokens[$0], "special": true] },
            "normalizer": NSNull(),
            "pre_tokenizer": pre,
            "post_processor": ["type": "ByteLevel"],
            "decoder": ["type": "ByteLevel"],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "fuse_unk": false, "byte_fallback": false,
                "vocab": vocab,
                "merges": mergesAsPairs ? merges.map { $0.split(separator: " ", maxSplits: 1).map(String.init) } as Any : merges as Any,
            ],
        ]
    }

    static func write(_ json: [String: Any], config: [String: Any]? = nil) throws -> String {
        let dir = temporaryPath("hf")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        if let config {
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
        }
        return dir + "/tokenizer.json"
    }

    @Test func tokenizerJSONEncodesLikeTheGGUFAndHasItsFingerprint() throws {
        for pairs in [false, true] {
            let path = try Self.write(try Self.smolLM2JSON(mergesAsPairs: pairs))
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            let t = try Tokenizer(contentsOf: path)
            #expect(t.fingerprint == referenceTokenizer.fingerprint)
            #expect(t.vocabularySize == 49152)
            for g in try goldenEncodings() { #expect(t.encode(g.text) == g.ids, "\(g.name)") }
        }
    }

    @Test func fingerprintMatchesTheIndependentComputation() throws {
        // Golden/fingerprint.txt is computed by the reference script from docs/tokenizer.md.
        let expected = try String(contentsOf: goldenDirectory.appendingPathComponent("fingerprint.txt"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(referenceTokenizer.fingerprint == expected)
        #expect(referenceTokenizer.fingerprint.count == 64)
        #expect(referenceTokenizer.fingerprint.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func fingerprintChangesWithOneMergeOrThePreTokenizer() throws {
        let swapped = try Self.write(try Self.smolLM2JSON(editMerges: { $0.swapAt(100, 101) }))
        let dropped = try Self.write(try Self.smolLM2JSON(editMerges: { $0.removeLast() }))
        let noDigits = try Self.write(try Self.smolLM2JSON(digits: false))
        defer {
            for p in [swapped, dropped, noDigits] { try? FileManager.default.removeItem(atPath: (p as NSString).deletingLastPathComponent) }
        }
        let prints = try [swapped, dropped, noDigits].map { try Tokenizer(contentsOf: $0).fingerprint }
        #expect(Set(prints + [referenceTokenizer.fingerprint]).count == 4)
        // Without the digit split, numbers tokenize differently (the exported tokenizer.json bug).
        let gpt2 = try Tokenizer(contentsOf: noDigits)
        #expect(gpt2.preTokenizer == .gpt2)
        // SmolLM2's vocabulary has no multi-digit tokens, so the split shows where whitespace
        // runs end at a digit: with it "\n    " stays whole; without, its last space joins "1".
        let text = "if x:\n    1"
        #expect(gpt2.encode(text) != referenceTokenizer.encode(text))
        #expect(referenceTokenizer.encode("x = 12345") == [104, 446, 216, 33, 34, 35, 36, 37])  // from the reference
    }

    @Test func aForeignFingerprintIsAnErrorNamingBoth() throws {
        let t = referenceTokenizer
        try t.requireFingerprint(t.fingerprint, recordedName: t.name, source: "indexes/code")
        let error = try #require(throws: TokenizerError.self) {
            try t.requireFingerprint(String(repeating: "ab", count: 32), recordedName: "gpt2", source: "indexes/code")
        }
        #expect(error.kind == .fingerprintMismatch)
        #expect(error.description.contains("indexes/code") && error.description.contains("gpt2") && error.description.contains(t.name))
        #expect(error.description.contains("abababab") && error.description.contains(String(t.fingerprint.prefix(16))))
    }

    @Test func configSuppliesBOSAndChatTemplate() throws {
        let template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        let path = try Self.write(try Self.smolLM2JSON(), config: [
            "bos_token": "<|im_start|>", "eos_token": ["content": "<|im_end|>"], "add_bos_token": true, "chat_template": template,
        ])
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let t = try Tokenizer(contentsOf: path)
        #expect(t.bosToken == 1 && t.eosToken == 2 && t.addsBOSToken)
        #expect(t.encodePrompt("hi") == [1] + t.encode("hi"))
        #expect(try t.renderChat(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: false) == "<user>hi")
    }

    @Test func unsupportedTokenizerJSONsAreRefused() throws {
        var metaspace = try Self.smolLM2JSON()
        metaspace["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁"]
        var normalized = try Self.smolLM2JSON()
        normalized["normalizer"] = ["type": "NFC"]
        var badMerge = try Self.smolLM2JSON()
        var model = badMerge["model"] as! [String: Any]
        model["merges"] = ["Ġ t", "no such-token"]
        badMerge["model"] = model
        for (json, kind) in [(metaspace, TokenizerError.Kind.unknownPreTokenizer), (normalized, .unsupportedModel), (badMerge, .malformedVocabulary)] {
            let path = try Self.write(json)
            defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
            let error = try #require(throws: TokenizerError.self) { try Tokenizer(contentsOf: path) }
            #expect(error.kind == kind && error.description.contains("tokenizer.json"))
        }
    }

    @Test func smolLM2AddsNoBOSAndKnowsItsSpecialTokens() throws {
        let t = referenceTokenizer
        #expect(!t.addsBOSToken && t.bosToken == 1 && t.eosToken == 2)
        #expect(t.encodePrompt("hi") == t.encode("hi"))
        #expect(t.specialTokenID("<|im_end|>") == 2 && t.isSpecialToken(2) && !t.isSpecialToken(905))
        #expect(t.name == "SmolLM2-135M" || t.name.lowercased().contains("smollm2"))
        #expect(try t.decode(t.encode("<|im_start|>user\nhi<|im_end|>"), skipSpecialTokens: true) == "user\nhi")
    }
}

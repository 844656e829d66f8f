import Foundation

/// Reads a ``TokenizerDefinition`` from a Hugging Face `tokenizer.json` (and optionally the
/// `tokenizer_config.json` beside it).
///
/// Accepted: `model.type` `BPE` without `byte_fallback`, `continuing_subword_prefix`,
/// `end_of_word_suffix` or `ignore_merges`; no normalizer; pre-tokenizer `ByteLevel` (with its
/// regex, no prefix space), alone or after `Digits(individual_digits: true)`. Anything else is
/// refused with an error rather than tokenized differently.
enum TokenizerJSONLoader {
    static func definition(_ data: Data, config configData: Data?, source: String) throws -> TokenizerDefinition {
        func fail(_ kind: TokenizerError.Kind, _ message: String) -> TokenizerError {
            TokenizerError(kind, source: source, message)
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail(.unrecognizedFormat, "not a GGUF file and not a JSON object")
        }
        guard let model = root["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Any],
              model["merges"] != nil
        else {
            throw fail(.unrecognizedFormat, "JSON without model.vocab and model.merges: not a Hugging Face tokenizer.json")
        }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw fail(.unsupportedModel, "model.type is \(type), not BPE") }
        if model["byte_fallback"] as? Bool == true { throw fail(.unsupportedModel, "byte_fallback BPE (SentencePiece style) is not byte-level BPE") }
        if model["ignore_merges"] as? Bool == true { throw fail(.unsupportedModel, "ignore_merges BPE is not supported") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw fail(.unsupportedModel, "\(key) \"\(s)\" is not byte-level BPE") }
        }
        if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            throw fail(.unsupportedModel, "a normalizer (\(describe(normalizer))) is not supported")
        }
        let pre = try preTokenizer(root["pre_tokenizer"], fail: fail)

        // Vocabulary: model.vocab plus added tokens (which may extend it).
        var stringOfID: [Int: String] = [:]
        for (s, v) in vocab {
            guard let id = (v as? NSNumber)?.intValue, id >= 0 else { throw fail(.malformedVocabulary, "token \(s) has id \(v)") }
            if let other = stringOfID[id] { throw fail(.malformedVocabulary, "id \(id) is given to both \(other) and \(s)") }
            stringOfID[id] = s
        }
        var addedSpecial: [Int: (String, Bool)] = [:]
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, let content = entry["content"] as? String else {
                throw fail(.malformedVocabulary, "an added token without id or content")
            }
            addedSpecial[id] = (content, entry["special"] as? Bool ?? false)
        }
        let size = max(stringOfID.keys.max() ?? -1, addedSpecial.keys.max() ?? -1) + 1
        var tokens = [[UInt8]](repeating: [], count: size)
        // Added tokens are matched before pre-tokenization, special or not.
        var special = [Bool](repeating: false, count: size)
        var idOfString: [String: UInt32] = [:]
        for id in 0..<size {
            if let (content, _) = addedSpecial[id] {
                tokens[id] = Array(content.utf8)
                special[id] = true
            } else if let s = stringOfID[id] {
                tokens[id] = ByteLevel.bytes(of: s) ?? Array(s.utf8)
            } else {
                throw fail(.malformedVocabulary, "no token has id \(id) (ids must be 0..<\(size) without gaps)")
            }
            if let s = stringOfID[id], idOfString[s] == nil { idOfString[s] = UInt32(id) }
        }

        var merges: [(UInt32, UInt32)] = []
        for (rank, m) in ((model["merges"] as? [Any]) ?? []).enumerated() {
            let pair: [String]
            if let s = m as? String {
                pair = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            } else if let a = m as? [String] {
                pair = a
            } else {
                pair = []
            }
            guard pair.count == 2, let a = idOfString[pair[0]], let b = idOfString[pair[1]] else {
                throw fail(.malformedVocabulary, "merge \(rank) (\(m)) does not name two tokens of the vocabulary")
            }
            merges.append((a, b))
        }

        var unknown: UInt32?
        if let unk = model["unk_token"] as? String {
            guard let id = idOfString[unk] ?? addedSpecial.first(where: { $0.value.0 == unk }).map({ UInt32($0.key) }) else {
                throw fail(.malformedVocabulary, "unk_token \(unk) is not in the vocabulary")
            }
            unknown = id
        }

        // BOS/EOS/add_bos/chat template: tokenizer_config.json, else the post-processor.
        let config = configData.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
        func idOf(_ value: Any?) -> UInt32? {
            let text = (value as? String) ?? ((value as? [String: Any])?["content"] as? String)
            guard let text else { return nil }
            return idOfString[text] ?? addedSpecial.first(where: { $0.value.0 == text }).map { UInt32($0.key) }
        }
        var bos = idOf(config["bos_token"])
        var addsBOS = config["add_bos_token"] as? Bool ?? false
        if let templated = templateBOS(root["post_processor"]), let id = idOf(templated) {
            bos = bos ?? id
            addsBOS = true
        }
        // Hugging Face repositories keep tokenizer.json in a directory named for the model.
        let directory = ((source as NSString).deletingLastPathComponent as NSString).lastPathComponent
        return TokenizerDefinition(
            source: source,
            name: directory.isEmpty || directory == "." ? "tokenizer" : directory,
            tokens: tokens, special: special, merges: merges, preTokenizer: pre,
            unknownToken: unknown, fuseUnknown: model["fuse_unk"] as? Bool ?? false,
            bosToken: bos, eosToken: idOf(config["eos_token"]), addsBOS: addsBOS,
            chatTemplate: config["chat_template"] as? String)
    }

    /// The pre-tokenizer a tokenizer.json describes.
    private static func preTokenizer(_ value: Any?, fail: (TokenizerError.Kind, String) -> TokenizerError) throws -> PreTokenizer {
        func isByteLevel(_ p: [String: Any]) -> Bool {
            p["type"] as? String == "ByteLevel" && (p["use_regex"] as? Bool ?? true) && !(p["add_prefix_space"] as? Bool ?? false)
        }
        func isDigits(_ p: [String: Any]) -> Bool {
            p["type"] as? String == "Digits" && p["individual_digits"] as? Bool == true
        }
        if let p = value as? [String: Any] {
            if isByteLevel(p) { return .gpt2 }
            if p["type"] as? String == "Sequence", let seq = p["pretokenizers"] as? [[String: Any]] {
                if seq.count == 1, isByteLevel(seq[0]) { return .gpt2 }
                if seq.count == 2, isDigits(seq[0]), isByteLevel(seq[1]) { return .gpt2SplitDigits }
            }
        }
        throw fail(.unknownPreTokenizer, "pre_tokenizer \(describe(value ?? NSNull())) is not one rasd reproduces")
    }

    /// The token a `TemplateProcessing` post-processor puts before a single sequence, if any.
    private static func templateBOS(_ value: Any?) -> String? {
        guard let p = value as? [String: Any], p["type"] as? String == "TemplateProcessing",
              let single = p["single"] as? [[String: Any]], let first = single.first,
              let token = first["SpecialToken"] as? [String: Any]
        else { return nil }
        return token["id"] as? String
    }

    private static func describe(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject(value),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
        else { return "\(value)" }
        let text = String(decoding: data, as: UTF8.self)
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}

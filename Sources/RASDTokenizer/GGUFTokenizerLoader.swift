import Foundation
import RASDGGUF

/// Reads a ``TokenizerDefinition`` from GGUF metadata (`tokenizer.ggml.*`), following llama.cpp's
/// conventions.
enum GGUFTokenizerLoader {
    /// llama.cpp token types that are matched in the text before pre-tokenization.
    static let controlType = 3
    static let userDefinedType = 4

    static func definition(_ file: GGUFFile) throws -> TokenizerDefinition {
        let path = file.path
        func require<T>(_ key: String, _ read: (String) throws -> T) throws -> T {
            guard file.metadata[key] != nil else {
                throw TokenizerError(.missingTokenizerMetadata, source: path, "metadata key \(key) is missing")
            }
            do { return try read(key) } catch let e as GGUFError { throw TokenizerError(ggufError: e) }
        }
        guard file.metadata.keys.contains(where: { $0.hasPrefix("tokenizer.ggml.") }) else {
            throw TokenizerError(.missingTokenizerMetadata, source: path, "the GGUF has no tokenizer.ggml.* metadata")
        }
        let model = try require("tokenizer.ggml.model", file.string)
        guard model == "gpt2" else {
            throw TokenizerError(.unsupportedModel, source: path, "tokenizer.ggml.model is \"\(model)\", not byte-level BPE (\"gpt2\")")
        }
        guard file.metadata["tokenizer.ggml.pre"] != nil else {
            throw TokenizerError(.unknownPreTokenizer, source: path, "tokenizer.ggml.pre is missing, so the pre-tokenizer is unknown")
        }
        let preName = try require("tokenizer.ggml.pre", file.string)
        guard let pre = PreTokenizer(ggufName: preName) else {
            throw TokenizerError(.unknownPreTokenizer, source: path, "pre-tokenizer \"\(preName)\" (tokenizer.ggml.pre) is not one rasd reproduces")
        }
        let strings = try require("tokenizer.ggml.tokens", file.stringArray)
        let mergeStrings = try require("tokenizer.ggml.merges", file.stringArray)
        var types = [Int](repeating: 1, count: strings.count)
        if file.metadata["tokenizer.ggml.token_type"] != nil {
            types = try require("tokenizer.ggml.token_type", file.integerArray)
            guard types.count == strings.count else {
                throw TokenizerError(.malformedVocabulary, source: path, "\(types.count) token types for \(strings.count) tokens")
            }
        }

        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(strings.count)
        var special: [Bool] = []
        special.reserveCapacity(strings.count)
        var idOfString: [String: UInt32] = [:]
        idOfString.reserveCapacity(strings.count)
        for (i, s) in strings.enumerated() {
            let isSpecial = types[i] == controlType || types[i] == userDefinedType
            // Special tokens are stored as plain UTF-8; the others in the byte-level alphabet.
            tokens.append(isSpecial ? Array(s.utf8) : (ByteLevel.bytes(of: s) ?? Array(s.utf8)))
            special.append(isSpecial)
            if idOfString[s] == nil { idOfString[s] = UInt32(i) }
        }
        var merges: [(UInt32, UInt32)] = []
        merges.reserveCapacity(mergeStrings.count)
        for (rank, m) in mergeStrings.enumerated() {
            let parts = m.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let a = idOfString[String(parts[0])], let b = idOfString[String(parts[1])] else {
                throw TokenizerError(.malformedVocabulary, source: path, "merge \(rank) \"\(m)\" does not name two tokens of the vocabulary")
            }
            merges.append((a, b))
        }
        func optionalID(_ key: String) -> UInt32? {
            guard let v = file.metadata[key]?.integer, v >= 0, v < strings.count else { return nil }
            return UInt32(v)
        }
        let base = file.metadata["general.basename"]?.string ?? file.metadata["general.name"]?.string
        let name = [base, file.metadata["general.size_label"]?.string].compactMap { $0 }.joined(separator: "-")
        return TokenizerDefinition(
            source: path,
            name: name.isEmpty ? ((path as NSString).lastPathComponent as NSString).deletingPathExtension : name,
            tokens: tokens, special: special, merges: merges, preTokenizer: pre,
            // llama.cpp drops bytes without a token whatever tokenizer.ggml.unknown_token_id says.
            unknownToken: nil, fuseUnknown: false,
            bosToken: optionalID("tokenizer.ggml.bos_token_id"),
            eosToken: optionalID("tokenizer.ggml.eos_token_id"),
            addsBOS: file.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? false,
            chatTemplate: file.metadata["tokenizer.chat_template"]?.string)
    }
}

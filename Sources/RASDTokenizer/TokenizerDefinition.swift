/// Everything that defines a byte-level BPE tokenizer, whichever file it came from. The GGUF
/// and tokenizer.json loaders produce one; ``Tokenizer`` compiles it into lookup tables.
struct TokenizerDefinition {
    /// Where it came from, for error messages.
    var source: String
    /// Short human name.
    var name: String
    /// Raw bytes of every token, by id.
    var tokens: [[UInt8]]
    /// Tokens matched in the text before pre-tokenization (control and user-defined tokens).
    var special: [Bool]
    /// Merges in rank order: (left id, right id). The merged token is the concatenation.
    var merges: [(UInt32, UInt32)]
    var preTokenizer: PreTokenizer
    /// Token emitted for a byte without a token of its own; nil drops such bytes.
    var unknownToken: UInt32?
    /// Whether consecutive unknown bytes of a word become one unknown token.
    var fuseUnknown: Bool
    var bosToken: UInt32?
    var eosToken: UInt32?
    /// Whether the model expects BOS at the start of a prompt.
    var addsBOS: Bool
    /// Jinja chat template, when the model ships one.
    var chatTemplate: String?

    /// Checks ids and sizes, so the compiled tables never index out of range.
    func validate() throws {
        let n = tokens.count
        guard n > 0, n < Int(UInt32.max) else {
            throw TokenizerError(.malformedVocabulary, source: source, "the vocabulary has \(n) tokens")
        }
        guard special.count == n else {
            throw TokenizerError(.malformedVocabulary, source: source, "\(special.count) token types for \(n) tokens")
        }
        for (name, id) in [("BOS", bosToken), ("EOS", eosToken), ("unknown", unknownToken)] {
            if let id, Int(id) >= n {
                throw TokenizerError(.malformedVocabulary, source: source, "the \(name) token id \(id) is not below the vocabulary size \(n)")
            }
        }
        for (rank, (a, b)) in merges.enumerated() where Int(a) >= n || Int(b) >= n {
            throw TokenizerError(.malformedVocabulary, source: source, "merge \(rank) refers to token id \(max(a, b)) beyond the vocabulary")
        }
    }
}

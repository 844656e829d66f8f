/// An error loading or using a tokenizer, naming the input and what to do about it.
public struct TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The file could not be read (missing, unreadable, a directory).
        case io
        /// The file is neither a GGUF nor a Hugging Face `tokenizer.json`.
        case unrecognizedFormat
        /// The GGUF has no (or incomplete) `tokenizer.ggml.*` metadata.
        case missingTokenizerMetadata
        /// The GGUF file is cut short (a partial download or copy).
        case truncatedFile
        /// The tokenizer model is not byte-level BPE (for example SentencePiece or WordPiece).
        case unsupportedModel
        /// The pre-tokenizer is not one this implementation reproduces exactly.
        case unknownPreTokenizer
        /// The vocabulary or merges are inconsistent (a merge of unknown tokens, duplicate ids).
        case malformedVocabulary
        /// A token id passed to decoding is not in the vocabulary.
        case tokenOutOfRange
        /// A chat template failed to parse or render.
        case chatTemplate
        /// Token ids were made by another tokenizer (a datastore's recorded fingerprint differs).
        case fingerprintMismatch
    }

    /// What went wrong.
    public var kind: Kind
    /// The file or input concerned.
    public var source: String
    /// Details, written for the person running the program.
    public var message: String

    /// Creates an error of `kind` about `source`.
    public init(_ kind: Kind, source: String, _ message: String) {
        self.kind = kind
        self.source = source
        self.message = message
    }

    public var description: String {
        let hint: String
        switch kind {
        case .io: hint = "check the path and its permissions"
        case .unrecognizedFormat: hint = "pass a .gguf model or a Hugging Face tokenizer.json"
        case .missingTokenizerMetadata:
            hint = "this GGUF carries no tokenizer; use a model GGUF converted by llama.cpp with its vocabulary, or pass the model's tokenizer.json"
        case .truncatedFile: hint = "the file is incomplete; fetch it again (scripts/fetch-model re-downloads a damaged model)"
        case .unsupportedModel: hint = "rasd supports GPT-2-style byte-level BPE tokenizers"
        case .unknownPreTokenizer:
            hint = "supported pre-tokenizers: \(PreTokenizer.supportedNames.joined(separator: ", "))"
        case .malformedVocabulary: hint = "the tokenizer data is damaged; fetch the model again"
        case .tokenOutOfRange: hint = "the ids come from another tokenizer or are corrupt; check which model produced them"
        case .chatTemplate: hint = "fix the template or pass messages the template accepts"
        case .fingerprintMismatch:
            hint = "use the model the ids were made with, or rebuild them with this tokenizer"
        }
        return "\(source): \(message) (\(hint))"
    }
}

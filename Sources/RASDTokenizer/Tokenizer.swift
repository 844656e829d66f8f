import Foundation
import RASDGGUF

/// An exact GPT-2-style byte-level BPE tokenizer, loaded from a GGUF model's metadata or from a
/// Hugging Face `tokenizer.json`.
///
/// Encoding: special tokens (control and user-defined tokens, such as `<|im_start|>`) are
/// matched in the text first, longest first; the text between them is cut into words by the
/// ``PreTokenizer`` and each word is byte-pair encoded. The result equals the Hugging Face
/// `tokenizers` library's for the same vocabulary, merges and pre-tokenizer.
///
/// Bytes with no token of their own (SmolLM2 has none for 21 byte values, such as U+0004 or
/// the lead bytes of planes 4 to 11) are dropped when the tokenizer has no unknown token, as
/// the reference and llama.cpp do; a ``TokenEncoder`` counts them. A tokenizer.json with an
/// `unk_token` emits that token instead.
///
/// A `Tokenizer` is immutable and safe to share between threads.
///
/// ```swift
/// let tokenizer = try Tokenizer(contentsOf: ReferenceModel.path)
/// let ids = tokenizer.encode("def f(x):\n    return x")
/// let text = try tokenizer.decode(ids)
/// ```
public final class Tokenizer: Sendable {
    /// A short human name (the model's base name, or the file name).
    public let name: String
    /// The file the tokenizer was loaded from.
    public let source: String
    /// Number of token ids; valid ids are `0..<vocabularySize`.
    public let vocabularySize: Int
    /// How text is cut into words.
    public let preTokenizer: PreTokenizer
    /// Beginning-of-sequence token, if the model has one.
    public let bosToken: UInt32?
    /// End-of-sequence token, if the model has one (for SmolLM2-Instruct, `<|im_end|>`).
    public let eosToken: UInt32?
    /// Whether the model's metadata asks for BOS at the start of a prompt (see ``encodePrompt(_:)``).
    public let addsBOSToken: Bool
    /// The token emitted for bytes without a token, or nil when such bytes are dropped.
    public let unknownToken: UInt32?
    /// Lowercase hex SHA-256 of the canonical serialization of vocabulary, merges and
    /// pre-tokenizer (see docs/tokenizer.md). Two tokenizers with the same fingerprint encode
    /// every text identically.
    public let fingerprint: String
    /// The model's chat template (Jinja source), if it ships one.
    public let chatTemplateSource: String?

    let tables: CompiledTables
    let special: [Bool]
    private let chatTemplate: Result<ChatTemplate, TokenizerError>?

    init(_ d: TokenizerDefinition) throws {
        try d.validate()
        name = d.name
        source = d.source
        vocabularySize = d.tokens.count
        preTokenizer = d.preTokenizer
        bosToken = d.bosToken
        eosToken = d.eosToken
        addsBOSToken = d.addsBOS && d.bosToken != nil
        unknownToken = d.unknownToken
        special = d.special
        tables = try CompiledTables(d)
        fingerprint = Fingerprint.compute(d)
        chatTemplateSource = d.chatTemplate
        chatTemplate = d.chatTemplate.map { source in
            Result { try ChatTemplate(source) }.mapError {
                ($0 as? TokenizerError) ?? TokenizerError(.chatTemplate, source: d.source, "\($0)")
            }
        }
    }

    /// Loads the tokenizer of a GGUF model, a Hugging Face `tokenizer.json`, or a directory
    /// holding a `tokenizer.json`, deciding by the file's content.
    /// - Throws: ``TokenizerError`` naming the file and what to do.
    public convenience init(contentsOf path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError(.io, source: path, "no such file")
        }
        if isDirectory.boolValue {
            let json = (path as NSString).appendingPathComponent("tokenizer.json")
            guard FileManager.default.fileExists(atPath: json) else {
                throw TokenizerError(.unrecognizedFormat, source: path, "a directory without tokenizer.json")
            }
            try self.init(tokenizerJSONPath: json)
            return
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TokenizerError(.io, source: path, "cannot open the file")
        }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        try? handle.close()
        if magic == Data("GGUF".utf8) {
            try self.init(ggufPath: path)
        } else {
            try self.init(tokenizerJSONPath: path)
        }
    }

    /// Loads the tokenizer from the `tokenizer.ggml.*` metadata of the GGUF at `path`.
    public convenience init(ggufPath path: String) throws {
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch let e as GGUFError {
            throw TokenizerError(ggufError: e)
        }
        try self.init(gguf: file)
    }

    /// Loads the tokenizer from the metadata of an opened GGUF file.
    public convenience init(gguf: GGUFFile) throws {
        try self.init(GGUFTokenizerLoader.definition(gguf))
    }

    /// Loads a Hugging Face `tokenizer.json`; a `tokenizer_config.json` beside it supplies
    /// BOS/EOS, whether to add BOS, and the chat template.
    public convenience init(tokenizerJSONPath path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TokenizerError(.io, source: path, "cannot read: \(error.localizedDescription)")
        }
        let configPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer_config.json")
        let config = try? Data(contentsOf: URL(fileURLWithPath: configPath))
        try self.init(TokenizerJSONLoader.definition(data, config: config, source: path))
    }

    // MARK: Encoding

    /// Creates a reusable encoder with its own word cache, for encoding much text on one thread.
    /// - Parameter cacheLimit: most words the cache holds before it starts afresh.
    public func makeEncoder(cacheLimit: Int = 1 << 18) -> TokenEncoder {
        TokenEncoder(tokenizer: self, cacheLimit: cacheLimit)
    }

    /// The ids of `text` (no BOS; see ``encodePrompt(_:)``).
    public func encode(_ text: String) -> [UInt32] {
        makeEncoder().encode(text)
    }

    /// The ids of UTF-8 `bytes`, for corpus files already in memory (no BOS).
    public func encode(utf8 bytes: UnsafeBufferPointer<UInt8>) -> [UInt32] {
        var out: [UInt32] = []
        makeEncoder().encode(utf8: bytes, into: &out)
        return out
    }

    /// The ids of UTF-8 `bytes` (no BOS).
    public func encode(utf8 bytes: [UInt8]) -> [UInt32] {
        bytes.withUnsafeBufferPointer { encode(utf8: $0) }
    }

    /// The ids of `text` as the model expects a prompt: BOS first when ``addsBOSToken``.
    public func encodePrompt(_ text: String) -> [UInt32] {
        var out: [UInt32] = []
        if addsBOSToken, let bos = bosToken { out.append(bos) }
        makeEncoder().encode(text, into: &out)
        return out
    }

    /// Checks that ids recorded with `fingerprint` (for example in a datastore header) were
    /// made by this tokenizer.
    /// - Parameters:
    ///   - recordedFingerprint: the fingerprint stored with the ids.
    ///   - recordedName: the name of the tokenizer stored with them, for the message.
    ///   - source: what holds the ids (a datastore path), for the message.
    /// - Throws: ``TokenizerError`` `.fingerprintMismatch` naming both tokenizers.
    public func requireFingerprint(_ recordedFingerprint: String, recordedName: String, source: String) throws {
        guard recordedFingerprint.lowercased() != fingerprint else { return }
        throw TokenizerError(
            .fingerprintMismatch, source: source,
            "made with tokenizer \(recordedName) (fingerprint \(recordedFingerprint.prefix(16))…), "
                + "but the tokenizer in use is \(name) from \(self.source) (fingerprint \(fingerprint.prefix(16))…)")
    }

    // MARK: Decoding

    /// The text of `ids`. Bytes that do not form valid UTF-8 (a sequence cut in the middle of a
    /// character) become U+FFFD, as in the reference.
    /// - Parameter skipSpecialTokens: leave out special tokens such as `<|im_end|>`.
    /// - Throws: ``TokenizerError`` `.tokenOutOfRange` for an id outside the vocabulary.
    public func decode(_ ids: some Sequence<UInt32>, skipSpecialTokens: Bool = false) throws -> String {
        String(decoding: try decodeBytes(ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }

    /// The raw bytes of `ids`, concatenated.
    public func decodeBytes(_ ids: some Sequence<UInt32>, skipSpecialTokens: Bool = false) throws -> [UInt8] {
        var out: [UInt8] = []
        for (position, id) in ids.enumerated() {
            try appendBytes(of: id, at: position, skipSpecialTokens: skipSpecialTokens, to: &out)
        }
        return out
    }

    func appendBytes(of id: UInt32, at position: Int, skipSpecialTokens: Bool, to out: inout [UInt8]) throws {
        guard Int(id) < vocabularySize else {
            throw TokenizerError(
                .tokenOutOfRange, source: "token ids",
                "id \(id) at position \(position) is not below \(name)'s vocabulary size \(vocabularySize)")
        }
        if skipSpecialTokens && special[Int(id)] { return }
        out.append(contentsOf: tables.bytes(of: id))
    }

    /// The raw bytes of one token.
    public func tokenBytes(_ id: UInt32) throws -> [UInt8] {
        var out: [UInt8] = []
        try appendBytes(of: id, at: 0, skipSpecialTokens: false, to: &out)
        return out
    }

    /// Whether `id` is a special (control or user-defined) token.
    public func isSpecialToken(_ id: UInt32) -> Bool {
        Int(id) < vocabularySize && special[Int(id)]
    }

    /// The id of the special token spelled `text` (for example `<|im_end|>`), if there is one.
    public func specialTokenID(_ text: String) -> UInt32? {
        let bytes = Array(text.utf8)
        return tables.specials.first { $0.bytes == bytes }?.id
    }

    // MARK: Chat

    /// Renders a conversation with the model's own chat template, as transformers'
    /// `apply_chat_template` (Jinja2 with `trim_blocks` and `lstrip_blocks`) does.
    /// - Parameter addGenerationPrompt: end with the header of an assistant turn.
    /// - Throws: ``TokenizerError`` `.chatTemplate` when the model has no template or it fails.
    public func renderChat(messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        guard let chatTemplate else {
            throw TokenizerError(.chatTemplate, source: source, "the model has no chat template (tokenizer.chat_template)")
        }
        let template = try chatTemplate.get()
        let special: (UInt32?) -> String = { id in
            guard let id, let bytes = try? self.tokenBytes(id) else { return "" }
            return String(decoding: bytes, as: UTF8.self)
        }
        return try template.render(
            messages: messages, addGenerationPrompt: addGenerationPrompt,
            bosToken: special(bosToken), eosToken: special(eosToken))
    }
}

extension TokenizerError {
    /// The tokenizer error for a GGUF reader error.
    init(ggufError e: GGUFError) {
        switch e.kind {
        case .io: self.init(.io, source: e.path, e.message)
        case .notGGUF: self.init(.unrecognizedFormat, source: e.path, e.message)
        case .truncated: self.init(.truncatedFile, source: e.path, e.message)
        case .missingMetadata: self.init(.missingTokenizerMetadata, source: e.path, e.message)
        default: self.init(.unrecognizedFormat, source: e.path, e.description)
        }
    }
}

/// Turns a stream of token ids into text as it arrives, never emitting half a UTF-8 character.
///
/// A byte-level token can end in the middle of a character (an emoji is often two or three
/// tokens). The decoder holds back such an incomplete tail until the tokens that complete it
/// arrive; bytes that can never become valid UTF-8 are emitted as U+FFFD at once. The
/// concatenation of everything ``append(_:)`` and ``finish()`` return equals
/// ``Tokenizer/decode(_:skipSpecialTokens:)`` of all the ids.
///
/// ```swift
/// var stream = StreamingDecoder(tokenizer: tokenizer)
/// for id in generatedIDs { print(try stream.append(id), terminator: "") }
/// print(stream.finish())
/// ```
public struct StreamingDecoder: Sendable {
    /// The tokenizer whose ids are decoded.
    public let tokenizer: Tokenizer
    /// Whether special tokens (such as `<|im_end|>`) are left out of the text.
    public let skipSpecialTokens: Bool
    private var pending: [UInt8] = []
    private var position = 0

    /// Creates a decoder for ids of `tokenizer`.
    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Bytes held back because they may be the start of a character still to come (0–3).
    public var pendingByteCount: Int { pending.count }

    /// Adds one token; returns the text that is now complete (often empty or one token's text).
    /// - Throws: ``TokenizerError`` `.tokenOutOfRange` for an id outside the vocabulary.
    public mutating func append(_ id: UInt32) throws -> String {
        try tokenizer.appendBytes(of: id, at: position, skipSpecialTokens: skipSpecialTokens, to: &pending)
        position += 1
        return takeComplete()
    }

    /// Adds several tokens; returns the text that is now complete.
    public mutating func append(contentsOf ids: some Sequence<UInt32>) throws -> String {
        for id in ids {
            try tokenizer.appendBytes(of: id, at: position, skipSpecialTokens: skipSpecialTokens, to: &pending)
            position += 1
        }
        return takeComplete()
    }

    /// Ends the stream: an incomplete character left at the end becomes U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    private mutating func takeComplete() -> String {
        let keep = Self.incompleteSuffixLength(pending)
        let cut = pending.count - keep
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Length of the longest suffix of `bytes` that is a proper prefix of a valid UTF-8
    /// encoding (so more bytes could complete it); 0 when the bytes end cleanly or the tail can
    /// never become valid. Checks the second byte's narrowed ranges (no overlongs, surrogates or
    /// values beyond U+10FFFF), so an invalid tail is emitted as U+FFFD immediately.
    static func incompleteSuffixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        guard n > 0 else { return 0 }
        for back in 1...min(3, n) {
            let lead = bytes[n - back]
            if lead & 0xC0 == 0x80 { continue }  // continuation byte: look further back
            let needed: Int
            switch lead {
            case 0xC2...0xDF: needed = 2
            case 0xE0...0xEF: needed = 3
            case 0xF0...0xF4: needed = 4
            default: return 0
            }
            guard back < needed else { return 0 }
            if back >= 2 {
                let second = bytes[n - back + 1]
                let ok: Bool
                switch lead {
                case 0xE0: ok = (0xA0...0xBF).contains(second)
                case 0xED: ok = (0x80...0x9F).contains(second)
                case 0xF0: ok = (0x90...0xBF).contains(second)
                case 0xF4: ok = (0x80...0x8F).contains(second)
                default: ok = true
                }
                if !ok { return 0 }
            }
            return back
        }
        return 0
    }
}

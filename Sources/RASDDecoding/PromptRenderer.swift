import RASDTokenizer

/// Turns text prompts into the token ids the model sees: plain completion, or the model's own
/// chat template around a user message.
public struct PromptRenderer: Sendable {
    public let tokenizer: Tokenizer

    public init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// Tokens that end a generation: the end-of-sequence token and the chat turn terminators the
    /// vocabulary has (`<|im_end|>`, `<|endoftext|>`).
    public var stopTokens: Set<UInt32> {
        var s = Set<UInt32>()
        if let eos = tokenizer.eosToken { s.insert(eos) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let id = tokenizer.specialTokenID(name) { s.insert(id) }
        }
        return s
    }

    /// The prompt as completion text (`chat` false) or as one user turn of the chat template,
    /// ending with the assistant's generation prompt.
    public func tokens(_ text: String, chat: Bool) throws -> [UInt32] {
        guard chat else { return tokenizer.encodePrompt(text) }
        let rendered = try tokenizer.renderChat(messages: [ChatMessage(role: "user", content: text)], addGenerationPrompt: true)
        return tokenizer.encode(rendered)
    }

    /// A chat prompt of `instruction`, `document` and `question` in at most `budget` tokens.
    ///
    /// The truncation rule: the instruction, the question and the chat template always stay
    /// whole; only the document is cut, at a token boundary, keeping its beginning. (A prompt
    /// whose fixed parts alone exceed the budget is returned whole.)
    public func tokens(instruction: String, document: String, question: String, budget: Int) throws -> (tokens: [UInt32], truncated: Bool) {
        func render(_ doc: String) throws -> [UInt32] {
            let body = [instruction, doc, question].filter { !$0.isEmpty }.joined(separator: "\n\n")
            return try tokens(body, chat: true)
        }
        let whole = try render(document)
        guard whole.count > budget, !document.isEmpty else { return (whole, false) }
        let fixed = try render("").count
        let docTokens = tokenizer.encode(document)
        var keep = max(0, min(docTokens.count, budget - fixed - 2))
        // Decoding a cut can merge differently when re-encoded; shrink until the rendering fits.
        while keep > 0 {
            let cut = try tokenizer.decode(Array(docTokens.prefix(keep)))
            let candidate = try render(cut)
            if candidate.count <= budget { return (candidate, true) }
            keep -= max(1, (candidate.count - budget))
        }
        return (try render(""), true)
    }
}

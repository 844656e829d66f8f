/// One message of a conversation.
public struct ChatMessage: Sendable, Hashable, Codable {
    /// `system`, `user`, `assistant`, or whatever roles the template knows.
    public var role: String
    /// The text of the message.
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A compiled chat template: the Jinja subset chat templates use, rendered the way
/// transformers' `apply_chat_template` renders it (Jinja2 with `trim_blocks` and
/// `lstrip_blocks`, trailing newline of the source dropped).
///
/// Supported: `{{ }}`, `{% if/elif/else %}`, `{% for x in xs [if c] %}` with `loop.*` and
/// `{% else %}`, `{% set %}` (also `ns.attr` on a `namespace()`), comments, `-` whitespace
/// control; literals, lists and dicts, attribute and item access, slices, `+ - * / // % ~`,
/// comparisons, `and or not in is`, conditional expressions, the common filters (`trim`,
/// `upper`, `lower`, `capitalize`, `title`, `length`, `default`, `first`, `last`, `join`,
/// `string`, `int`, `list`, `tojson`, `reverse`, `replace`), tests (`defined`, `undefined`,
/// `none`, `string`, `number`, `mapping`, `iterable`, `true`, `false`), string methods
/// (`strip`, `startswith`, `split`, …) and `raise_exception(msg)`. Anything else is an error
/// when the template is compiled, never a silently different rendering.
public struct ChatTemplate: Sendable {
    let body: [TemplateNode]

    /// Compiles Jinja `source`.
    /// - Throws: ``TokenizerError`` `.chatTemplate` naming the unsupported construct.
    public init(_ source: String) throws {
        var parser = try TemplateParser(source: source)
        body = try parser.parseDocument()
    }

    /// Renders `messages` with the variables chat templates expect (`messages`,
    /// `add_generation_prompt`, `bos_token`, `eos_token`).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String = "", eosToken: String = "") throws -> String {
        let list = messages.map { m in
            TemplateValue.dictionary(TemplateDictionary([("role", .string(m.role)), ("content", .string(m.content))]))
        }
        var context = TemplateContext(globals: [
            "messages": .list(list),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
        ])
        var out = ""
        try context.render(body, into: &out)
        return out
    }
}

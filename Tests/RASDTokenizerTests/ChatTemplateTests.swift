import Foundation
import RASDTokenizer
import Testing

/// Chat rendering equals Python jinja2's (the environment transformers uses) on the GGUF's own
/// template and on templates exercising more of Jinja.
@Suite struct ChatTemplateTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            var template: String
            var messages: [ChatMessage]
            var addGenerationPrompt: Bool
            var rendered: String
        }
        var templates: [String: String]
        var cases: [Case]
    }

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: goldenDirectory.appendingPathComponent("chat.json")))
    }

    @Test func theGGUFTemplateIsTheOneTheGoldenWasRenderedFrom() throws {
        #expect(referenceTokenizer.chatTemplateSource == (try Self.golden().templates["gguf"]))
    }

    @Test func renderingEqualsJinja2() throws {
        let golden = try Self.golden()
        #expect(golden.cases.count >= 30)
        for c in golden.cases {
            let template = try ChatTemplate(try #require(golden.templates[c.template]))
            let rendered = try template.render(messages: c.messages, addGenerationPrompt: c.addGenerationPrompt, bosToken: "<s>", eosToken: "</s>")
            #expect(rendered == c.rendered, "\(c.template) \(c.messages.map(\.role)) gen=\(c.addGenerationPrompt)")
            if c.template == "gguf" {
                let viaTokenizer = try referenceTokenizer.renderChat(messages: c.messages, addGenerationPrompt: c.addGenerationPrompt)
                #expect(viaTokenizer == c.rendered)
            }
        }
    }

    @Test func renderedChatTokenizesIntoChatML() throws {
        let t = referenceTokenizer
        let text = try t.renderChat(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true)
        let ids = t.encodePrompt(text)
        #expect(ids.first == 1)  // <|im_start|> of the default system turn
        #expect(ids.filter { $0 == 1 }.count == 3 && ids.filter { $0 == 2 }.count == 2)
        #expect(try t.decode(ids).hasSuffix("<|im_start|>assistant\n"))
    }

    @Test func unsupportedOrBrokenTemplatesFailClearly() throws {
        for source in ["{% macro m() %}x{% endmacro %}", "{{ messages | frobnicate }}", "{% for m in messages %}", "{{ 'open"] {
            let error = try #require(throws: TokenizerError.self) {
                _ = try ChatTemplate(source).render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false)
            }
            #expect(error.kind == .chatTemplate)
        }
        let refusing = try ChatTemplate("{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}")
        let error = try #require(throws: TokenizerError.self) {
            try refusing.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false)
        }
        #expect(error.message.contains("system first"))
    }
}

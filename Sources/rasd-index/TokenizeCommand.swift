import ArgumentParser
import Foundation
import RASDGGUF
import RASDTokenizer

/// `rasd-index tokenize`: text to token ids and back with a model's tokenizer.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Text on standard input to token ids (or ids back to text with --decode).",
        discussion: """
            Prints the ids separated by spaces, with the BOS token first only if the model's \
            metadata asks for one. --chat reads a JSON list of {"role","content"} messages (or \
            plain text, taken as one user message) and renders it with the model's own chat \
            template first. --files-from tokenizes each listed file and prints one JSON line \
            {"path","ids"} per file (used by scripts/reference/tokenizer_reference.py compare).
            """)

    @Option(help: "A GGUF model or a Hugging Face tokenizer.json (default: the reference model).")
    var model: String = ReferenceModel.path

    @Flag(help: "Read token ids (separated by spaces, commas or newlines) and print their text.")
    var decode = false

    @Flag(help: "Render standard input as a chat with the model's template before tokenizing.")
    var chat = false

    @Flag(help: "With --chat: print the rendered text instead of ids.")
    var renderOnly = false

    @Flag(inversion: .prefixedNo, help: "With --chat: end with the assistant turn's header.")
    var generationPrompt = true

    @Flag(help: "Print one token per line: id and the token's bytes.")
    var verbose = false

    @Option(help: "Tokenize the files listed in this file ('-': standard input), one JSON line each.")
    var filesFrom: String?

    @Flag(help: "With --files-from: print JSON lines (the only output format it has; accepted for clarity).")
    var jsonl = false

    func run() throws {
        let tokenizer = try Tokenizer(contentsOf: model)
        if let filesFrom {
            try tokenizeFiles(tokenizer, listing: filesFrom)
            return
        }
        let input = FileHandle.standardInput.readDataToEndOfFile()
        if decode {
            let text = String(decoding: input, as: UTF8.self)
            var ids: [UInt32] = []
            for field in text.split(whereSeparator: { $0 == " " || $0 == "," || $0.isNewline || $0 == "\t" }) {
                guard let id = UInt32(field) else {
                    throw InputError("standard input: \"\(field)\" is not a token id (expected non-negative integers)")
                }
                ids.append(id)
            }
            FileHandle.standardOutput.write(Data(try tokenizer.decodeBytes(ids)))
            return
        }
        guard let text = String(validating: input, as: UTF8.self) else {
            throw InputError("standard input is not valid UTF-8; convert it first (for example with iconv)")
        }
        var ids: [UInt32]
        if chat {
            let rendered = try tokenizer.renderChat(messages: try messages(from: text), addGenerationPrompt: generationPrompt)
            if renderOnly {
                print(rendered, terminator: "")
                return
            }
            ids = tokenizer.encodePrompt(rendered)
        } else {
            ids = tokenizer.encodePrompt(text)
        }
        if verbose {
            for id in ids {
                let piece = String(decoding: try tokenizer.tokenBytes(id), as: UTF8.self)
                print("\(id)\t\(piece.debugDescription)")
            }
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }

    private func messages(from text: String) throws -> [ChatMessage] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("[") {
            do {
                return try JSONDecoder().decode([ChatMessage].self, from: Data(trimmed.utf8))
            } catch {
                throw InputError("standard input looks like JSON but is not a list of {\"role\": …, \"content\": …} messages (\(Self.explain(error)))")
            }
        }
        return [ChatMessage(role: "user", content: text)]
    }

    /// A short reason for a JSON decoding failure.
    private static func explain(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "message \(context.codingPath.first?.intValue.map(String.init) ?? "?") has no \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return context.debugDescription
        case DecodingError.dataCorrupted(let context):
            return "invalid JSON: \(context.underlyingError.map { "\($0)" } ?? context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    private func tokenizeFiles(_ tokenizer: Tokenizer, listing: String) throws {
        let data: Data
        if listing == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let d = FileManager.default.contents(atPath: listing) else {
                throw InputError("\(listing): cannot read the file list")
            }
            data = d
        }
        let encoder = tokenizer.makeEncoder()
        let json = JSONEncoder()
        let out = FileHandle.standardOutput
        for path in String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init) where !path.isEmpty {
            struct Line: Encodable {
                var path: String
                var ids: [UInt32]?
                var error: String?
            }
            var line = Line(path: path)
            if let bytes = FileManager.default.contents(atPath: path) {
                if String(validating: bytes, as: UTF8.self) == nil {
                    line.error = "not valid UTF-8"
                } else {
                    var ids: [UInt32] = []
                    bytes.withUnsafeBytes { raw in
                        encoder.encode(utf8: raw.bindMemory(to: UInt8.self), into: &ids)
                    }
                    line.ids = ids
                }
            } else {
                line.error = "cannot read"
            }
            out.write(try json.encode(line) + Data("\n".utf8))
        }
    }
}

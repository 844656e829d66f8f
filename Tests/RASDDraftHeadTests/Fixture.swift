import Foundation
import RASDDraftHead
import RASDGGUF
import RASDModel
import RASDTokenizer

/// The real model, its tokenizer and the shipped draft head, shared by the tests.
final class Fixture: @unchecked Sendable {
    static let shared = Result { try Fixture() }
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    let model: LlamaModel
    let tokenizer: Tokenizer
    let head: DraftHead

    init() throws {
        let path = try ReferenceModel.existingPath()
        model = try LlamaModel(path: path)
        tokenizer = try Tokenizer(contentsOf: path)
        head = try DraftHead(path: Self.repository + "/heads/" + DraftHeadLocation.fileName(forModel: path), target: model)
    }
}

func fixture() throws -> Fixture { try Fixture.shared.get() }

import Foundation
import RASDGGUF
import RASDTokenizer

/// The reference model's tokenizer, loaded once for all tests.
let referenceTokenizer: Tokenizer = {
    do {
        return try Tokenizer(contentsOf: try ReferenceModel.existingPath())
    } catch {
        fatalError("tests need the reference model: \(error)")
    }
}()

/// Directory of the committed golden files (made by scripts/reference/tokenizer_reference.py).
let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

struct GoldenEncoding: Decodable {
    var name: String
    var text: String
    var ids: [UInt32]
}

func goldenEncodings() throws -> [GoldenEncoding] {
    let data = try Data(contentsOf: goldenDirectory.appendingPathComponent("encode.jsonl"))
    return try data.split(separator: UInt8(ascii: "\n")).map { try JSONDecoder().decode(GoldenEncoding.self, from: Data($0)) }
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("rasd-tok-\(UUID().uuidString)-\(name)").path
}

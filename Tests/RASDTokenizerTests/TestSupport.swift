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

/// Writes a small GGUF v3 file by hand (independently of the reader) with string, string-array
/// and integer-array metadata and no tensors.
struct GGUFWriter {
    enum Value {
        case string(String)
        case strings([String])
        case int32s([Int32])
        case uint32(UInt32)
        case bool(Bool)
    }

    static func file(_ kvs: [(String, Value)]) -> [UInt8] {
        var b: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); b += Array(s.utf8) }
        b += Array("GGUF".utf8); u32(3); u64(0); u64(UInt64(kvs.count))
        for (k, v) in kvs {
            str(k)
            switch v {
            case .string(let s): u32(8); str(s)
            case .strings(let a): u32(9); u32(8); u64(UInt64(a.count)); a.forEach(str)
            case .int32s(let a): u32(9); u32(5); u64(UInt64(a.count)); a.forEach { u32(UInt32(bitPattern: $0)) }
            case .uint32(let v): u32(4); u32(v)
            case .bool(let v): u32(7); b.append(v ? 1 : 0)
            }
        }
        return b
    }
}

func writeTemporary(_ bytes: [UInt8], name: String) throws -> String {
    let path = temporaryPath(name)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// A tiny byte-level vocabulary: the 256 byte tokens in GPT-2's alphabet plus a few merges.
func tinyVocabulary() -> (tokens: [String], merges: [String]) {
    var printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
    var chars = [String](repeating: "", count: 256)
    for b in printable { chars[b] = String(Unicode.Scalar(UInt8(b))) }
    var next = 256
    for b in 0..<256 where !printable.contains(b) {
        chars[b] = String(Unicode.Scalar(UInt32(next))!)
        next += 1
    }
    printable.removeAll()
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]
    return (chars + ["he", "ll", "hell", "hello", "Ġw", "Ġwo", "<|end|>"], merges)
}

import Foundation
import RASDTokenizer
import Testing

/// Exactness against the reference (Hugging Face `tokenizers` built from the GGUF's own
/// vocabulary and merges with SmolLM2's digit-splitting pre-tokenizer): every golden text must
/// encode to exactly the reference ids and decode back to the text.
@Suite struct GoldenEncodingTests {
    @Test func everyGoldenTextEncodesToTheReferenceIDs() throws {
        let golden = try goldenEncodings()
        #expect(golden.count > 80)
        for g in golden {
            let ids = referenceTokenizer.encode(g.text)
            if ids != g.ids {
                let at = zip(ids, g.ids).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset ?? min(ids.count, g.ids.count)
                Issue.record("\(g.name): first difference at token \(at): got \(Array(ids[at...].prefix(6))), reference \(Array(g.ids[at...].prefix(6)))")
            }
        }
    }

    @Test func oneEncoderReusedAcrossTextsGivesTheSameIDs() throws {
        // The word cache must never change results: encode everything twice with one encoder,
        // with a cache small enough to be cleared along the way.
        let encoder = referenceTokenizer.makeEncoder(cacheLimit: 1024)
        for _ in 0..<2 {
            for g in try goldenEncodings() {
                #expect(encoder.encode(g.text) == g.ids, "\(g.name)")
            }
        }
    }

    @Test func bytesAndStringEntryPointsAgree() throws {
        for g in try goldenEncodings() {
            let bytes = Array(g.text.utf8)
            let ids = bytes.withUnsafeBufferPointer { referenceTokenizer.encode(utf8: $0) }
            #expect(ids == g.ids, "\(g.name)")
        }
    }

    @Test func decodingGoldenIDsGivesBackTheText() throws {
        for g in try goldenEncodings() where !g.text.unicodeScalars.contains(where: Self.hasNoToken) {
            #expect(try referenceTokenizer.decode(g.ids) == g.text, "\(g.name)")
        }
    }

    /// Characters whose UTF-8 has a byte without a token in SmolLM2's vocabulary.
    static func hasNoToken(_ s: Unicode.Scalar) -> Bool {
        let missing: Set<UInt8> = [4, 6, 19, 20, 22, 29, 192, 193, 241, 242, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255]
        return String(s).utf8.contains(where: missing.contains)
    }

    @Test func bytesWithoutATokenAreDroppedAndCounted() throws {
        // U+0004 and U+001D have no byte token in SmolLM2; the reference drops them.
        let encoder = referenceTokenizer.makeEncoder()
        let ids = encoder.encode("a\u{4}b\u{1D}")
        #expect(ids == referenceTokenizer.encode("ab") || ids == referenceTokenizer.encode("a") + referenceTokenizer.encode("b"))
        #expect(encoder.droppedByteCount == 2)
        #expect(try referenceTokenizer.decode(ids) == "ab")
    }
}

import RASDTokenizer
import Testing

/// Streaming detokenization never emits half a UTF-8 character and adds up to `decode`.
@Suite struct StreamingDecoderTests {
    @Test func goldenTextsStreamTokenByTokenWithoutBrokenCharacters() throws {
        for g in try goldenEncodings() where !g.text.unicodeScalars.contains(where: GoldenEncodingTests.hasNoToken) {
            var stream = StreamingDecoder(tokenizer: referenceTokenizer)
            var text = ""
            for id in g.ids {
                let piece = try stream.append(id)
                #expect(!piece.unicodeScalars.contains("\u{FFFD}"), "\(g.name): a chunk holds a broken character")
                #expect(stream.pendingByteCount <= 3)
                text += piece
            }
            text += stream.finish()
            #expect(text == g.text, "\(g.name)")
        }
    }

    @Test func anEmojiSplitOverTokensComesOutWhole() throws {
        let t = referenceTokenizer
        let ids = t.encode("👍🏽 ok")
        #expect(ids.count > 3)  // the emoji is several byte-level tokens
        var stream = StreamingDecoder(tokenizer: t)
        var chunks: [String] = []
        for id in ids { chunks.append(try stream.append(id)) }
        chunks.append(stream.finish())
        #expect(chunks.joined() == "👍🏽 ok")
        #expect(chunks.contains { $0.isEmpty })  // something had to wait for the rest of a character
        for c in chunks where !c.isEmpty { #expect(c.unicodeScalars.allSatisfy { $0 != "\u{FFFD}" }) }
    }

    @Test func arbitraryIDSequencesConcatenateToDecode() throws {
        // Random ids cut characters anywhere and make invalid UTF-8; the streamed text must
        // still equal decoding everything at once (invalid bytes become U+FFFD in both).
        var rng = SystemRandomNumberGenerator()
        let t = referenceTokenizer
        for _ in 0..<300 {
            let ids = (0..<Int.random(in: 1...40, using: &rng)).map { _ in UInt32.random(in: 17..<UInt32(t.vocabularySize), using: &rng) }
            var stream = StreamingDecoder(tokenizer: t)
            var text = ""
            for id in ids { text += try stream.append(id) }
            text += stream.finish()
            #expect(text == (try t.decode(ids)))
        }
    }

    @Test func anIncompleteCharacterAtTheEndBecomesOneReplacement() throws {
        let t = referenceTokenizer
        // Byte tokens for 0xE2 0x82 (the start of "€") without the last byte.
        let ids = try [0xE2, 0x82].map { b in try #require((0..<UInt32(t.vocabularySize)).first { (try? t.tokenBytes($0)) == [UInt8(b)] }) }
        var stream = StreamingDecoder(tokenizer: t)
        #expect(try stream.append(contentsOf: ids) == "")
        #expect(stream.pendingByteCount == 2)
        #expect(stream.finish() == "\u{FFFD}")
    }
}

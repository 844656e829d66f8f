import RASDTokenizer
import Testing

/// Any input encodes without failing, and decoding gives the bytes back (less the bytes that
/// have no token).
@Suite struct RobustnessTests {
    static let noToken: Set<UInt8> = [4, 6, 19, 20, 22, 29, 192, 193, 241, 242, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255]

    @Test func randomBytesRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        let t = referenceTokenizer
        let encoder = t.makeEncoder()
        for round in 0..<200 {
            // Mix ASCII-heavy and fully random bytes, lengths up to 2 KB.
            let n = Int.random(in: 0...2048, using: &rng)
            let bytes: [UInt8] = (0..<n).map { _ in
                round % 2 == 0 ? UInt8.random(in: 0...255, using: &rng) : [0x20, 0x0A, 0x61, 0x31, 0xC3, 0xA9, 0x27, 0x73][Int.random(in: 0..<8, using: &rng)]
            }
            let dropped = encoder.droppedByteCount
            var ids: [UInt32] = []
            bytes.withUnsafeBufferPointer { encoder.encode(utf8: $0, into: &ids) }
            #expect(try t.decodeBytes(ids) == bytes.filter { !Self.noToken.contains($0) })
            #expect(encoder.droppedByteCount - dropped == bytes.filter(Self.noToken.contains).count)
        }
    }

    @Test func aHugeSingleWordIsFastAndExact() throws {
        // One 200 KB "word" takes the heap path; it must round-trip and merge (not hang).
        let text = String(repeating: "abcdefghij", count: 20_000)
        let ids = referenceTokenizer.encode(text)
        #expect(try referenceTokenizer.decode(ids) == text)
        #expect(ids.count < text.utf8.count / 2)
        // (Exactness of the heap path against the reference: the golden long words, edge-16.)
    }

    @Test func sharedTokenizerAcrossThreads() async throws {
        let golden = try goldenEncodings()
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 {
                group.addTask { golden.allSatisfy { referenceTokenizer.encode($0.text) == $0.ids } }
            }
            for try await ok in group { #expect(ok) }
        }
    }
}

/// GPT-2's byte-level alphabet: every byte is written as a printable character in the
/// vocabulary files (`Ġ` for a space, `Ċ` for a newline, …). rasd converts tokens back to raw
/// bytes when it loads a tokenizer and works on bytes from then on.
enum ByteLevel {
    /// The character standing for each byte.
    static let characterForByte: [Unicode.Scalar] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for b in printable { table[b] = Unicode.Scalar(UInt8(b)) }
        var next: UInt32 = 256
        for b in 0..<256 where !printable.contains(b) {
            table[b] = Unicode.Scalar(next) ?? " "
            next += 1
        }
        return table
    }()

    /// The byte each alphabet character stands for.
    static let byteForCharacter: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in characterForByte.enumerated() { map[c] = UInt8(b) }
        return map
    }()

    /// Raw bytes of a vocabulary string, or nil when it has a character outside the alphabet.
    static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = byteForCharacter[s] else { return nil }
            out.append(b)
        }
        return out
    }

    /// The vocabulary string of raw bytes.
    static func string(of bytes: some Sequence<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(characterForByte[Int(b)]) }
        return String(s)
    }
}

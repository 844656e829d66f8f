import Crypto

/// The tokenizer fingerprint: SHA-256 over a canonical serialization of everything that decides
/// how text becomes ids. Documented byte for byte in docs/tokenizer.md; changing it breaks every
/// datastore built before, so its version string must change with it.
enum Fingerprint {
    static let version = "rasd-tokenizer-fingerprint/1"

    static func serialization(_ d: TokenizerDefinition) -> [UInt8] {
        var out: [UInt8] = []
        func line(_ s: String) { out += Array(s.utf8); out.append(0x0A) }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        line(version)
        line("model byte-level-bpe")
        line("pre-tokenizer \(d.preTokenizer.canonicalName)")
        line("unknown \(d.unknownToken.map { "\($0)\(d.fuseUnknown ? " fused" : "")" } ?? "none")")
        line("tokens \(d.tokens.count)")
        for (i, t) in d.tokens.enumerated() {
            out.append(d.special[i] ? 0x73 : 0x6E)  // "s" special, "n" normal
            u32(UInt32(t.count))
            out += t
        }
        line("")
        line("merges \(d.merges.count)")
        for (a, b) in d.merges {
            u32(a)
            u32(b)
        }
        return out
    }

    static func compute(_ d: TokenizerDefinition) -> String {
        let digest = SHA256.hash(data: serialization(d))
        let hex: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(64)
        for byte in digest {
            s.append(hex[Int(byte >> 4)])
            s.append(hex[Int(byte & 15)])
        }
        return s
    }
}

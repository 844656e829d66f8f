/// Strict UTF-8 validation over bytes (no overlongs, surrogates or values beyond U+10FFFF).
enum UTF8Validation {
    /// Offset of the first byte that is not part of valid UTF-8, or nil when all is valid.
    static func firstInvalidOffset(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = b.count
        var i = 0
        while i < n {
            // ASCII fast path, eight bytes at a time.
            if i + 8 <= n {
                let word = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: b[i..<(i + 8)])).loadUnaligned(as: UInt64.self)
                if word & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                    continue
                }
            }
            let c = b[i]
            if c < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; hi = 0x9F
            case 0xF0: length = 4; lo = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; hi = 0x8F
            default: return i
            }
            guard i + length <= n else { return i }
            guard (lo...hi).contains(b[i + 1]) else { return i }
            for k in 2..<length where b[i + k] & 0xC0 != 0x80 { return i }
            i += length
        }
        return nil
    }
}

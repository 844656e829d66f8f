/// The lookup tables encoding and decoding run on, in manually allocated memory so the hot
/// loops index plain pointers (no array bounds or uniqueness checks, no closures).
///
/// Immutable after `init`, hence `@unchecked Sendable`: any number of threads read it.
final class CompiledTables: @unchecked Sendable {
    /// Concatenated token bytes; token `i` is `tokenBytes[tokenStart[i]..<tokenStart[i + 1]]`.
    let tokenBytes: UnsafeMutableBufferPointer<UInt8>
    let tokenStart: UnsafeMutableBufferPointer<Int>
    /// The token of each single byte, or `noToken`.
    let byteToken: UnsafeMutableBufferPointer<UInt32>
    /// GPT-2 regex classes of U+0000..U+FFFF.
    let classes: UnsafeMutableBufferPointer<UInt8>
    /// Open-addressing hash table of merges: key `left << 32 | right` (`emptyKey` when free),
    /// value `rank << 32 | merged id`.
    let mergeKeys: UnsafeMutableBufferPointer<UInt64>
    let mergeValues: UnsafeMutableBufferPointer<UInt64>
    let mergeMask: Int
    /// Special tokens (matched before BPE), longest first; `specialFirstByte[b]` says whether
    /// any starts with byte `b`.
    let specials: [(bytes: [UInt8], id: UInt32)]
    let specialFirstByte: UnsafeMutableBufferPointer<Bool>
    let unknownToken: UInt32?
    let fuseUnknown: Bool
    let splitDigits: Bool

    static let noToken = UInt32.max
    static let emptyKey = UInt64.max

    init(_ d: TokenizerDefinition) throws {
        let n = d.tokens.count
        tokenStart = .allocate(capacity: n + 1)
        var total = 0
        for (i, t) in d.tokens.enumerated() {
            tokenStart[i] = total
            total += t.count
        }
        tokenStart[n] = total
        tokenBytes = .allocate(capacity: max(1, total))
        for (i, t) in d.tokens.enumerated() {
            for (k, b) in t.enumerated() { tokenBytes[tokenStart[i] + k] = b }
        }

        byteToken = .allocate(capacity: 256)
        byteToken.initialize(repeating: Self.noToken)
        // The token of a byte is the normal (non-special) single-byte token; the first wins.
        for (i, t) in d.tokens.enumerated().reversed() where t.count == 1 && !d.special[i] {
            byteToken[Int(t[0])] = UInt32(i)
        }

        let classTable = d.preTokenizer.classTable
        classes = .allocate(capacity: classTable.count)
        _ = classes.initialize(from: classTable)

        var capacity = 16
        while capacity < d.merges.count * 2 { capacity <<= 1 }
        mergeKeys = .allocate(capacity: capacity)
        mergeKeys.initialize(repeating: Self.emptyKey)
        mergeValues = .allocate(capacity: capacity)
        mergeValues.initialize(repeating: 0)
        mergeMask = capacity - 1

        var idOfBytes: [[UInt8]: UInt32] = [:]
        idOfBytes.reserveCapacity(n)
        for (i, t) in d.tokens.enumerated() where !d.special[i] {
            if idOfBytes[t] == nil { idOfBytes[t] = UInt32(i) }
        }
        for (rank, (a, b)) in d.merges.enumerated() {
            let merged = d.tokens[Int(a)] + d.tokens[Int(b)]
            guard let result = idOfBytes[merged] else {
                throw TokenizerError(
                    .malformedVocabulary, source: d.source,
                    "merge \(rank) (\(ByteLevel.string(of: d.tokens[Int(a)])) \(ByteLevel.string(of: d.tokens[Int(b)]))) makes a token that is not in the vocabulary")
            }
            let key = UInt64(a) << 32 | UInt64(b)
            var slot = Self.hash(key) & (capacity - 1)
            while mergeKeys[slot] != Self.emptyKey && mergeKeys[slot] != key { slot = (slot + 1) & (capacity - 1) }
            // A repeated pair keeps its first (best) rank, as the reference's merge map does.
            if mergeKeys[slot] == Self.emptyKey {
                mergeKeys[slot] = key
                mergeValues[slot] = UInt64(rank) << 32 | UInt64(result)
            }
        }

        specialFirstByte = .allocate(capacity: 256)
        specialFirstByte.initialize(repeating: false)
        var specials: [(bytes: [UInt8], id: UInt32)] = []
        for (i, t) in d.tokens.enumerated() where d.special[i] && !t.isEmpty {
            specials.append((t, UInt32(i)))
            specialFirstByte[Int(t[0])] = true
        }
        specials.sort { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        self.specials = specials
        unknownToken = d.unknownToken
        fuseUnknown = d.fuseUnknown
        splitDigits = d.preTokenizer.splitDigits
    }

    deinit {
        tokenBytes.deallocate()
        tokenStart.deallocate()
        byteToken.deallocate()
        classes.deallocate()
        mergeKeys.deallocate()
        mergeValues.deallocate()
        specialFirstByte.deallocate()
    }

    @inline(__always)
    static func hash(_ key: UInt64) -> Int {
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    /// `rank << 32 | merged id` of the pair, or `UInt64.max` when the pair does not merge.
    @inline(__always)
    func merge(_ left: UInt32, _ right: UInt32) -> UInt64 {
        let key = UInt64(left) << 32 | UInt64(right)
        var slot = Self.hash(key) & mergeMask
        while true {
            let k = mergeKeys[slot]
            if k == key { return mergeValues[slot] }
            if k == Self.emptyKey { return UInt64.max }
            slot = (slot + 1) & mergeMask
        }
    }

    /// The special token starting at `i` (longest match), if any.
    @inline(__always)
    func special(at i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (id: UInt32, length: Int)? {
        guard specialFirstByte[Int(bytes[i])] else { return nil }
        let remaining = bytes.count - i
        for s in specials where s.bytes.count <= remaining {
            var k = 1
            while k < s.bytes.count && bytes[i + k] == s.bytes[k] { k += 1 }
            if k == s.bytes.count { return (s.id, k) }
        }
        return nil
    }

    /// Bytes of token `id` (the caller checked the range).
    @inline(__always)
    func bytes(of id: UInt32) -> UnsafeMutableBufferPointer<UInt8> {
        let i = Int(id)
        return UnsafeMutableBufferPointer(rebasing: tokenBytes[tokenStart[i]..<tokenStart[i + 1]])
    }
}

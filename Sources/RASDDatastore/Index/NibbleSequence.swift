/// A sequence of 4-bit symbols with constant-time rank, one level of the wavelet tree.
///
/// Layout (all little-endian): blocks of 192 positions in 128 bytes — 16 `UInt16` counts of
/// each nibble value before the block, relative to its superblock, then 96 bytes of nibbles (the
/// even position in the low half of each byte). Superblocks of 341 blocks (65,472 positions)
/// store 16 absolute `UInt32` counts in a separate array. A rank reads the superblock entry and
/// one 128-byte block (two adjacent cache lines), then counts matching nibbles with SWAR
/// arithmetic on 64-bit words — 5.33 bits per position, one cache-line pair per rank.
struct NibbleSequence: @unchecked Sendable {
    // @unchecked: read-only views into the memory map (or into owned copies kept alive by the shard).
    static let blockPositions = 192
    static let blockBytes = 128
    static let superPositions = 192 * 341

    /// Number of positions.
    let count: Int
    let blocks: UnsafeRawPointer
    let supers: UnsafePointer<UInt32>

    static func blockCount(for count: Int) -> Int { count / blockPositions + 1 }
    static func superCount(for count: Int) -> Int { count / superPositions + 1 }

    init(count: Int, blocks: UnsafeRawPointer, supers: UnsafePointer<UInt32>) {
        self.count = count
        self.blocks = blocks
        self.supers = supers
    }

    /// Encodes `nibbles` (one value 0...15 per byte) into `blocks` and `supers`, which must hold
    /// `blockCount(for:) * blockBytes` bytes and `superCount(for:) * 16` entries.
    static func encode(
        _ nibbles: UnsafeBufferPointer<UInt8>, blocks: UnsafeMutableRawBufferPointer,
        supers: UnsafeMutableBufferPointer<UInt32>
    ) {
        let n = nibbles.count
        let nBlocks = blockCount(for: n)
        precondition(blocks.count >= nBlocks * blockBytes && supers.count >= superCount(for: n) * 16)
        guard let out = blocks.baseAddress else { return }
        out.initializeMemory(as: UInt8.self, repeating: 0, count: nBlocks * blockBytes)
        var total = [UInt32](repeating: 0, count: 16)
        var relative = [UInt16](repeating: 0, count: 16)
        for b in 0..<nBlocks {
            let start = b * blockPositions
            if start % superPositions == 0 {
                let s = start / superPositions
                for v in 0..<16 { supers[s * 16 + v] = total[v]; relative[v] = 0 }
            }
            let base = out + b * blockBytes
            for v in 0..<16 { base.storeBytes(of: relative[v].littleEndian, toByteOffset: v * 2, as: UInt16.self) }
            let data = (base + 32).assumingMemoryBound(to: UInt8.self)
            let end = min(n, start + blockPositions)
            var i = start
            while i < end {
                let v = nibbles[i]
                let k = i - start
                data[k >> 1] |= (k & 1 == 0) ? v : v << 4
                total[Int(v)] += 1
                relative[Int(v)] += 1
                i += 1
            }
        }
    }

    /// The nibble at position `i`.
    @inline(__always)
    func nibble(_ i: Int) -> Int {
        let b = i / Self.blockPositions
        let k = i - b * Self.blockPositions
        let byte = blocks.load(fromByteOffset: b * Self.blockBytes + 32 + (k >> 1), as: UInt8.self)
        return Int((k & 1 == 0) ? byte & 15 : byte >> 4)
    }

    /// Occurrences of nibble `v` in positions `0..<i`.
    @inline(__always)
    func rank(_ v: Int, _ i: Int) -> Int {
        let b = i / Self.blockPositions
        let k = i - b * Self.blockPositions
        let base = blocks + b * Self.blockBytes
        let head = Int(supers[(i / Self.superPositions) &* 16 &+ v])
            + Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: v * 2, as: UInt16.self)))
        return head + Self.countInBlock(base + 32, upTo: k, v)
    }

    /// Occurrences of `v` among the first `k` nibbles of a block's data.
    ///
    /// XOR with `v` repeated makes matching nibbles zero; OR-folding each nibble's bits into its
    /// low bit leaves one bit per non-matching nibble, so a popcount gives the matches of 16
    /// positions at once.
    @inline(__always)
    static func countInBlock(_ data: UnsafeRawPointer, upTo k: Int, _ v: Int) -> Int {
        let pattern = UInt64(truncatingIfNeeded: v) &* 0x1111_1111_1111_1111
        let fullWords = k >> 4
        var matches = 0
        var w = 0
        while w < fullWords {
            let x = UInt64(littleEndian: data.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self)) ^ pattern
            let nonzero = (x | (x >> 1) | (x >> 2) | (x >> 3)) & 0x1111_1111_1111_1111
            matches &+= 16 &- nonzero.nonzeroBitCount
            w &+= 1
        }
        let rest = k & 15
        if rest > 0 {
            let x = UInt64(littleEndian: data.loadUnaligned(fromByteOffset: w &* 8, as: UInt64.self)) ^ pattern
            let nonzero = (x | (x >> 1) | (x >> 2) | (x >> 3)) & 0x1111_1111_1111_1111
            let mask: UInt64 = (1 << UInt64(rest &* 4)) &- 1
            matches &+= rest &- (nonzero & mask).nonzeroBitCount
        }
        return matches
    }

    /// Counts of every nibble value in positions `0..<i`, added into `out[0..<16]`.
    @inline(__always)
    func histogram(_ i: Int, into out: UnsafeMutablePointer<Int>) {
        let b = i / Self.blockPositions
        let k = i - b * Self.blockPositions
        let base = blocks + b * Self.blockBytes
        let s = supers + (i / Self.superPositions) * 16
        for v in 0..<16 {
            out[v] = Int(s[v]) + Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: v * 2, as: UInt16.self)))
        }
        let data = (base + 32).assumingMemoryBound(to: UInt8.self)
        var j = 0
        while j + 1 < k {
            let byte = data[j >> 1]
            out[Int(byte & 15)] += 1
            out[Int(byte >> 4)] += 1
            j += 2
        }
        if j < k { out[Int(data[j >> 1] & 15)] += 1 }
    }

    /// Counts of every nibble value in positions `from..<to`, where both lie in the same block
    /// (`to` may be the first position of the next block).
    @inline(__always)
    func histogramInBlock(from: Int, to: Int, into out: UnsafeMutablePointer<Int>) {
        for v in 0..<16 { out[v] = 0 }
        var i = from
        while i < to {
            out[nibble(i)] += 1
            i += 1
        }
    }
}

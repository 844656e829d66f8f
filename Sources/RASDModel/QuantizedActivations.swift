import CRASDKernels

/// Rows of activations quantized to 8 bits per 32-element block, as the integer kernels need.
///
/// Per block: `q[32]` with `q = round(x / d)`, `d = max|x| / 127` (llama.cpp's Q8_1 scheme,
/// with the scale and `d * sum(q)` kept in `Float`), and the integer `sum(q)`. Each row is
/// quantized on its own, so a token's quantized input never depends on the batch around it.
/// The C kernel paths quantize with `rasd_quantize_avx2`: the same operations, the same bytes.
final class QuantizedActivations {
    let blocksPerRow: Int
    /// Whether `rasd_quantize_avx2` runs (any C kernel path) instead of the Swift loop.
    let vectorized: Bool
    private(set) var capacity: Int
    private var qBuffer: AlignedBuffer
    private var dBuffer: AlignedBuffer
    private var sBuffer: AlignedBuffer
    private var sumBuffer: AlignedBuffer

    init(columns: Int, capacity: Int, kernels: KernelPath) {
        precondition(columns % 32 == 0, "activation width must be a multiple of 32")
        blocksPerRow = columns / 32
        vectorized = kernels != .portable
        self.capacity = max(1, capacity)
        qBuffer = AlignedBuffer(byteCount: self.capacity * columns)
        dBuffer = AlignedBuffer(byteCount: self.capacity * blocksPerRow * 4)
        sBuffer = AlignedBuffer(byteCount: self.capacity * blocksPerRow * 4)
        sumBuffer = AlignedBuffer(byteCount: self.capacity * blocksPerRow * 4)
    }

    var q: UnsafeMutablePointer<Int8> { qBuffer.pointer() }
    var d: UnsafeMutablePointer<Float> { dBuffer.pointer() }
    var s: UnsafeMutablePointer<Float> { sBuffer.pointer() }
    var sums: UnsafeMutablePointer<Int32> { sumBuffer.pointer() }

    /// Makes room for `rows` rows (contents are not kept).
    func reserve(rows: Int) {
        guard rows > capacity else { return }
        capacity = max(rows, capacity * 2)
        qBuffer = AlignedBuffer(byteCount: capacity * blocksPerRow * 32)
        dBuffer = AlignedBuffer(byteCount: capacity * blocksPerRow * 4)
        sBuffer = AlignedBuffer(byteCount: capacity * blocksPerRow * 4)
        sumBuffer = AlignedBuffer(byteCount: capacity * blocksPerRow * 4)
    }

    private static let magic: Float = 12_582_912  // 1.5 * 2^23
    private static let magicBits = Int32(bitPattern: magic.bitPattern)

    /// Quantizes `rows` rows of `x` (row `i` at `x + i * stride`) into rows `0..<rows`.
    func quantize(_ x: UnsafePointer<Float>, rows: Int, stride: Int) {
        reserve(rows: rows)
        quantize(x, rows: 0..<rows, stride: stride)
    }

    /// Quantizes rows `rows` of `x` into the same rows (capacity must already suffice; disjoint
    /// ranges may run on different threads).
    func quantize(_ x: UnsafePointer<Float>, rows: Range<Int>, stride: Int) {
        precondition(rows.upperBound <= capacity, "quantized activations hold \(capacity) rows")
        let q = self.q, d = self.d, s = self.s, sums = self.sums
        if vectorized {
            rasd_quantize_avx2(x, rows.lowerBound, rows.upperBound, stride, blocksPerRow, q, d, s, sums)
            return
        }
        for row in rows {
            for b in 0..<blocksPerRow {
                let src = x + row * stride + b * 32
                // max |x| on the bit patterns: non-negative floats order like their bits, and
                // an integer max reduction vectorizes where a float one may not.
                var amaxBits: UInt32 = 0
                for i in 0..<32 { amaxBits = max(amaxBits, src[i].bitPattern & 0x7FFF_FFFF) }
                let scale = Float(bitPattern: amaxBits) / 127
                let inverse: Float = scale != 0 ? 1 / scale : 0
                let dst = q + (row * blocksPerRow + b) * 32
                var sum: Int32 = 0
                for i in 0..<32 {
                    // roundf (half away from zero) in plain float operations that vectorize:
                    // adding 1.5 * 2^23 rounds to nearest-even and leaves the integer in the
                    // low mantissa bits (|y| <= 127); exact ties are then moved away from zero.
                    let y = src[i] * inverse
                    let even = (y + Self.magic) - Self.magic
                    let r = abs(y - even) == 0.5 ? y + (y > 0 ? 0.5 : -0.5) : even
                    let v = Int32(bitPattern: (r + Self.magic).bitPattern) &- Self.magicBits
                    dst[i] = Int8(truncatingIfNeeded: v)
                    sum &+= v
                }
                // Scales kept at F16 precision, as llama.cpp's Q8_0/Q8_1 blocks store them.
                d[row * blocksPerRow + b] = Float(Float16(scale))
                s[row * blocksPerRow + b] = Float(Float16(scale * Float(sum)))
                sums[row * blocksPerRow + b] = sum
            }
        }
    }
}

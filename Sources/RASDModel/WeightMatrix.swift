import CRASDKernels
import RASDGGUF

/// A weight matrix (`rows` outputs × `columns` inputs) repacked for the kernels.
///
/// Rows are stored in groups of 8, each group block after block along the input dimension
/// (32 inputs per block). Inside a group-block the 8 rows are interleaved in 4-byte words
/// (see `rasd_kernels.h`), so one 32-byte vector holds 4 consecutive weights of all 8 rows and
/// an integer dot product against a broadcast slice of the input leaves each row's sum in its
/// own lane, with no horizontal reduction:
///
/// | format | group-block layout | bytes per 32 weights (GGUF → here) |
/// |---|---|---|
/// | Q4_1 | `d[8] f16, m[8] f16, 4 × 32 bytes of nibbles` | 20 → 20 |
/// | Q8_0 | `d[8] f16, 8 × 32 bytes of i8` | 34 → 34 |
/// | F16 | per input: 8 × f16 | 64 → 64 |
/// | F32 | per input: 8 × f32 | 128 → 128 |
///
/// Each unpacked block is reused across a tile of tokens. The repacked matrix is the only copy
/// kept: the GGUF mapping is released after loading, so resident memory stays near the file
/// size.
///
/// Next formats: Q4_K repacks losslessly into the Q4_1 layout (each 32-weight sub-block's
/// `d·scale` and `-dmin·min` are exact in F32); Q6_K would get a Q8-style layout with 16-weight
/// sub-block scales.
public final class WeightMatrix: @unchecked Sendable {
    // @unchecked: immutable after init.

    /// Storage formats.
    public enum Format: String, Sendable {
        case q4_1, q8_0, f16, f32
    }

    /// Storage format.
    public let format: Format
    /// Output dimension.
    public let rows: Int
    /// Input dimension (a multiple of 32).
    public let columns: Int
    /// Groups of 8 rows (the last one zero-padded when `rows % 8 != 0`).
    let groups: Int
    let storage: AlignedBuffer

    /// Rows rounded up to a multiple of 8: outputs are written in whole groups, so an output
    /// row of a batch needs this many floats.
    public var paddedRows: Int { groups * 8 }

    /// Bytes of the repacked matrix.
    public var byteCount: Int { storage.byteCount }

    /// Whether the kernels read the quantized (8-bit) form of the input.
    var takesQuantizedInput: Bool { format == .q4_1 || format == .q8_0 }

    private var blocks: Int { columns / 32 }
    private var groupBytes: Int {
        switch format {
        case .q4_1: return blocks * 160
        case .q8_0: return blocks * 272
        case .f16: return columns * 16
        case .f32: return columns * 32
        }
    }

    /// Repacks the GGUF tensor `name` of `file`, checking it has `columns` inputs (and `rows`
    /// outputs when given), into memory from `arena` when given.
    /// - Throws: ``GGUFError`` `.missingTensor` when absent or misshapen,
    ///   `.unsupportedTensorType` for a type without kernels.
    init(file: GGUFFile, name: String, columns: Int, rows: Int? = nil, arena: WeightArena? = nil) throws {
        guard let info = file.tensor(named: name) else {
            throw GGUFError(.missingTensor, path: file.path, "tensor \(name) is missing")
        }
        let dims = info.dimensions
        guard dims.count == 2, dims[0] == columns, rows.map({ $0 == dims[1] }) ?? true else {
            let want = rows.map { "[\(columns), \($0)]" } ?? "[\(columns), n]"
            throw GGUFError(.missingTensor, path: file.path, "tensor \(name) has shape \(dims), expected \(want)")
        }
        guard columns % 32 == 0 else {
            throw GGUFError(.unsupportedTensorType, path: file.path, "tensor \(name): input width \(columns) is not a multiple of 32")
        }
        switch info.type {
        case .q4_1: format = .q4_1
        case .q8_0: format = .q8_0
        case .f16: format = .f16
        case .f32: format = .f32
        default:
            throw GGUFError(
                .unsupportedTensorType, path: file.path,
                "tensor \(name) has type \(info.type); the engine computes with Q4_1, Q8_0, F16 and F32")
        }
        self.rows = dims[1]
        self.columns = columns
        groups = (dims[1] + 7) / 8
        let source = try file.tensorData(info)
        let groupBytes = Self.groupBytes(format, columns: columns)
        storage = AlignedBuffer(byteCount: groups * groupBytes, arena: arena)
        storage.raw.initializeMemory(as: UInt8.self, repeating: 0, count: storage.byteCount)
        repack(from: source)
    }

    /// A float matrix from row-major `values` (`rows × columns`), stored as `format`
    /// (`.f32` or `.f16`; for draft heads and tests).
    public convenience init(rows: Int, columns: Int, values: [Float], format: Format = .f32) throws {
        guard rows > 0, columns > 0, columns % 32 == 0, values.count == rows * columns else {
            throw EngineError.invalidArgument(
                "a weight matrix needs rows × columns values with columns a multiple of 32 (got \(values.count) for \(rows) × \(columns))")
        }
        guard format == .f32 || format == .f16 else {
            throw EngineError.invalidArgument("float weights can be stored as f32 or f16, not \(format)")
        }
        self.init(format: format, rows: rows, columns: columns)
        for r in 0..<rows {
            let g = r / 8, lane = r % 8
            for k in 0..<columns {
                let v = values[r * columns + k]
                if format == .f32 {
                    (storage.raw + g * columns * 32 + k * 32 + lane * 4).storeBytes(of: v, as: Float.self)
                } else {
                    (storage.raw + g * columns * 16 + k * 16 + lane * 2).storeBytes(of: Float16(v), as: Float16.self)
                }
            }
        }
    }

    /// A zeroed matrix of `rows` × `columns` in `format`, filled by the caller.
    init(format: Format, rows: Int, columns: Int) {
        self.format = format
        self.rows = rows
        self.columns = columns
        groups = (rows + 7) / 8
        storage = AlignedBuffer(byteCount: groups * Self.groupBytes(format, columns: columns))
        storage.raw.initializeMemory(as: UInt8.self, repeating: 0, count: storage.byteCount)
    }

    /// Copies row `sourceRow` of `source` (same format and width) into row `row`, bit for bit.
    func copyRow(_ row: Int, from source: WeightMatrix, row sourceRow: Int) {
        precondition(source.format == format && source.columns == columns, "rows are copied between matrices of one format and width")
        let dst = storage.raw + (row / 8) * groupBytes, src = UnsafeRawPointer(source.storage.raw + (sourceRow / 8) * groupBytes)
        let to = row % 8, from = sourceRow % 8
        // (offset of lane 0, bytes per lane) of each piece of a row, repeated every `stride` bytes.
        let pieces: [(offset: Int, bytes: Int)], stride: Int, units: Int
        switch format {
        case .q4_1: (pieces, stride, units) = ([(0, 2), (16, 2), (32, 4), (64, 4), (96, 4), (128, 4)], 160, blocks)
        case .q8_0: (pieces, stride, units) = ([(0, 2)] + (0..<8).map { (16 + 32 * $0, 4) }, 272, blocks)
        case .f16: (pieces, stride, units) = ([(0, 2)], 16, columns)
        case .f32: (pieces, stride, units) = ([(0, 4)], 32, columns)
        }
        for u in 0..<units {
            for (offset, bytes) in pieces {
                (dst + u * stride + offset + to * bytes).copyMemory(from: src + u * stride + offset + from * bytes, byteCount: bytes)
            }
        }
    }

    private static func groupBytes(_ format: Format, columns: Int) -> Int {
        switch format {
        case .q4_1: return columns / 32 * 160
        case .q8_0: return columns / 32 * 272
        case .f16: return columns * 16
        case .f32: return columns * 32
        }
    }

    private func repack(from source: UnsafeRawBufferPointer) {
        guard let src = source.baseAddress else { return }
        let nb = blocks
        let dst = storage.raw
        for r in 0..<rows {
            let g = r / 8, lane = r % 8
            let group = dst + g * groupBytes
            switch format {
            case .q4_1:
                for b in 0..<nb {
                    let s = src + (r * nb + b) * 20
                    let o = group + b * 160
                    (o + lane * 2).copyMemory(from: s, byteCount: 2)
                    (o + 16 + lane * 2).copyMemory(from: s + 2, byteCount: 2)
                    for c in 0..<4 { (o + 32 + 32 * c + lane * 4).copyMemory(from: s + 4 + 4 * c, byteCount: 4) }
                }
            case .q8_0:
                for b in 0..<nb {
                    let s = src + (r * nb + b) * 34
                    let o = group + b * 272
                    (o + lane * 2).copyMemory(from: s, byteCount: 2)
                    for k in 0..<8 { (o + 16 + 32 * k + lane * 4).copyMemory(from: s + 2 + 4 * k, byteCount: 4) }
                }
            case .f16:
                for k in 0..<columns {
                    (group + k * 16 + lane * 2).copyMemory(from: src + (r * columns + k) * 2, byteCount: 2)
                }
            case .f32:
                for k in 0..<columns {
                    (group + k * 32 + lane * 4).copyMemory(from: src + (r * columns + k) * 4, byteCount: 4)
                }
            }
        }
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
    }

    /// Row `row` as floats (dequantized).
    public func row(_ row: Int) -> [Float] {
        precondition(row >= 0 && row < rows, "row \(row) out of 0..<\(rows)")
        return [Float](unsafeUninitializedCapacity: columns) { buffer, count in
            if let base = buffer.baseAddress { dequantizeRow(row, into: base) }
            count = columns
        }
    }

    /// `W · x` for each of the `tokens` rows of `input` (row-major, `tokens × columns`), on the
    /// calling thread: `tokens × rows` outputs, row-major. Quantized formats quantize the input
    /// to 8 bits per 32-block first, as the forward pass does.
    /// - Throws: ``EngineError/invalidArgument(_:)`` when `input` is not `tokens × columns`.
    public func apply(to input: [Float], tokens: Int, kernels: KernelPath = .best) throws -> [Float] {
        guard tokens > 0, input.count == tokens * columns else {
            throw EngineError.invalidArgument("input has \(input.count) values, expected \(tokens) × \(columns)")
        }
        let quantized = QuantizedActivations(columns: columns, capacity: tokens, kernels: kernels)
        let padded = [Float](unsafeUninitializedCapacity: tokens * paddedRows) { out, count in
            input.withUnsafeBufferPointer { x in
                guard let xb = x.baseAddress, let ob = out.baseAddress else { return }
                if takesQuantizedInput { quantized.quantize(xb, rows: tokens, stride: columns) }
                multiply(
                    x: xb, xStride: columns, quantized: quantized, tokens: tokens, output: ob, outputStride: paddedRows,
                    groups: 0..<groups, path: kernels)
            }
            count = tokens * paddedRows
        }
        guard paddedRows != rows else { return padded }
        return (0..<tokens).flatMap { padded[($0 * paddedRows)..<($0 * paddedRows + rows)] }
    }

    /// Writes row `row` as floats (`columns` values) to `output`: the embedding lookup.
    func dequantizeRow(_ row: Int, into output: UnsafeMutablePointer<Float>) {
        let g = row / 8, lane = row % 8
        let group = storage.raw + g * groupBytes
        switch format {
        case .q4_1:
            for b in 0..<blocks {
                let o = group + b * 160
                let d = Self.half(o + lane * 2), m = Self.half(o + 16 + lane * 2)
                for c in 0..<4 {
                    for j in 0..<4 {
                        let byte = o.load(fromByteOffset: 32 + 32 * c + lane * 4 + j, as: UInt8.self)
                        output[b * 32 + 4 * c + j] = Float(byte & 15) * d + m
                        output[b * 32 + 16 + 4 * c + j] = Float(byte >> 4) * d + m
                    }
                }
            }
        case .q8_0:
            for b in 0..<blocks {
                let o = group + b * 272
                let d = Self.half(o + lane * 2)
                for i in 0..<32 {
                    output[b * 32 + i] = Float(o.load(fromByteOffset: 16 + 32 * (i / 4) + lane * 4 + i % 4, as: Int8.self)) * d
                }
            }
        case .f16:
            for k in 0..<columns { output[k] = Float((group + k * 16 + lane * 2).load(as: Float16.self)) }
        case .f32:
            for k in 0..<columns { output[k] = (group + k * 32 + lane * 4).load(as: Float.self) }
        }
    }

    /// Computes `output[t * outputStride + r] = Σ_k W[r, k] · x_t[k]` for the rows of groups
    /// `groups` and tokens `0..<tokens`. Quantized formats read `quantized` (made from `x` by
    /// ``QuantizedActivations/quantize(_:rows:stride:)``), float formats read `x` directly.
    func multiply(
        x: UnsafePointer<Float>, xStride: Int, quantized: QuantizedActivations, tokens: Int,
        output: UnsafeMutablePointer<Float>, outputStride: Int, groups range: Range<Int>, path: KernelPath
    ) {
        guard !range.isEmpty, tokens > 0 else { return }
        let w = UnsafePointer(storage.raw.assumingMemoryBound(to: UInt8.self))
        let nb = blocks, g0 = range.lowerBound, g1 = range.upperBound
        switch (format, path) {
        case (.q4_1, .avx512vnni):
            rasd_q4_1_vnni(w, nb, g0, g1, quantized.q, quantized.d, quantized.s, tokens, output, outputStride)
        case (.q4_1, .avx2):
            rasd_q4_1_avx2(w, nb, g0, g1, quantized.q, quantized.d, quantized.s, tokens, output, outputStride)
        case (.q4_1, .portable):
            PortableKernels.q4_1(w, nb, range, quantized, tokens, output, outputStride)
        case (.q8_0, .avx512vnni):
            rasd_q8_0_vnni(w, nb, g0, g1, quantized.q, quantized.d, quantized.sums, tokens, output, outputStride)
        case (.q8_0, .avx2):
            rasd_q8_0_avx2(w, nb, g0, g1, quantized.q, quantized.d, quantized.sums, tokens, output, outputStride)
        case (.q8_0, .portable):
            PortableKernels.q8_0(w, nb, range, quantized, tokens, output, outputStride)
        case (.f16, _):
            PortableKernels.f16(w, columns, range, x, xStride, tokens, output, outputStride)
        case (.f32, _):
            PortableKernels.f32(w, columns, range, x, xStride, tokens, output, outputStride)
        }
    }
}

/// The Swift SIMD kernels: the portable path, and the reference for the C ones. Each output
/// lane performs exactly `acc = acc + ((d * da) * Float(isum) + m * sa)` per block in order.
enum PortableKernels {
    /// Row `lane`'s 16 nibble bytes of a Q4_1 group-block, in GGUF order.
    @inline(__always)
    private static func q4Row(_ blk: UnsafeRawPointer, _ lane: Int) -> SIMD16<UInt8> {
        let p = blk + 32 + 4 * lane
        let words = SIMD4<UInt32>(
            p.loadUnaligned(as: UInt32.self), (p + 32).loadUnaligned(as: UInt32.self),
            (p + 64).loadUnaligned(as: UInt32.self), (p + 96).loadUnaligned(as: UInt32.self))
        return unsafeBitCast(words, to: SIMD16<UInt8>.self)
    }

    /// Row `lane`'s 16 weights `16 * half ..< 16 * half + 16` of a Q8_0 group-block.
    @inline(__always)
    private static func q8Half(_ blk: UnsafeRawPointer, _ lane: Int, _ half: Int) -> SIMD16<Int8> {
        let p = blk + 16 + 128 * half + 4 * lane
        let words = SIMD4<UInt32>(
            p.loadUnaligned(as: UInt32.self), (p + 32).loadUnaligned(as: UInt32.self),
            (p + 64).loadUnaligned(as: UInt32.self), (p + 96).loadUnaligned(as: UInt32.self))
        return unsafeBitCast(words, to: SIMD16<Int8>.self)
    }

    static func q4_1(
        _ w: UnsafePointer<UInt8>, _ nb: Int, _ groups: Range<Int>, _ a: QuantizedActivations, _ tokens: Int,
        _ out: UnsafeMutablePointer<Float>, _ ostride: Int
    ) {
        let raw = UnsafeRawPointer(w)
        for g in groups {
            let wg = raw + g * nb * 160
            for t in 0..<tokens {
                var acc = SIMD8<Float>()
                for b in 0..<nb {
                    let blk = wg + b * 160
                    let d = SIMD8<Float>(blk.loadUnaligned(as: SIMD8<Float16>.self))
                    let m = SIMD8<Float>((blk + 16).loadUnaligned(as: SIMD8<Float16>.self))
                    let ap = UnsafeRawPointer(a.q + (t * nb + b) * 32)
                    let alo = SIMD16<Int16>(truncatingIfNeeded: ap.loadUnaligned(as: SIMD16<Int8>.self))
                    let ahi = SIMD16<Int16>(truncatingIfNeeded: (ap + 16).loadUnaligned(as: SIMD16<Int8>.self))
                    var isum = SIMD8<Int32>()
                    for r in 0..<8 {
                        let v = q4Row(blk, r)
                        let lo = SIMD16<Int16>(truncatingIfNeeded: v & 15)
                        let hi = SIMD16<Int16>(truncatingIfNeeded: v &>> 4)
                        isum[r] = SIMD16<Int32>(truncatingIfNeeded: lo &* alo &+ hi &* ahi).wrappedSum()
                    }
                    let t1 = d * a.d[t * nb + b]
                    let t2 = t1 * SIMD8<Float>(isum)
                    let t3 = m * a.s[t * nb + b]
                    acc = acc + (t2 + t3)
                }
                (UnsafeMutableRawPointer(out + t * ostride + 8 * g)).storeBytes(of: acc, as: SIMD8<Float>.self)
            }
        }
    }

    static func q8_0(
        _ w: UnsafePointer<UInt8>, _ nb: Int, _ groups: Range<Int>, _ a: QuantizedActivations, _ tokens: Int,
        _ out: UnsafeMutablePointer<Float>, _ ostride: Int
    ) {
        let raw = UnsafeRawPointer(w)
        for g in groups {
            let wg = raw + g * nb * 272
            for t in 0..<tokens {
                var acc = SIMD8<Float>()
                for b in 0..<nb {
                    let blk = wg + b * 272
                    let d = SIMD8<Float>(blk.loadUnaligned(as: SIMD8<Float16>.self))
                    let ap = UnsafeRawPointer(a.q + (t * nb + b) * 32)
                    let alo = SIMD16<Int32>(truncatingIfNeeded: ap.loadUnaligned(as: SIMD16<Int8>.self))
                    let ahi = SIMD16<Int32>(truncatingIfNeeded: (ap + 16).loadUnaligned(as: SIMD16<Int8>.self))
                    var isum = SIMD8<Int32>()
                    for r in 0..<8 {
                        let lo = SIMD16<Int32>(truncatingIfNeeded: q8Half(blk, r, 0))
                        let hi = SIMD16<Int32>(truncatingIfNeeded: q8Half(blk, r, 1))
                        isum[r] = (lo &* alo &+ hi &* ahi).wrappedSum()
                    }
                    let t1 = d * a.d[t * nb + b]
                    acc = acc + t1 * SIMD8<Float>(isum)
                }
                (UnsafeMutableRawPointer(out + t * ostride + 8 * g)).storeBytes(of: acc, as: SIMD8<Float>.self)
            }
        }
    }

    /// Float weights: each lane accumulates `acc = acc + w[k] * x[k]` for k in order. `load`
    /// reads the 8 weights of input `k` of a group (`bytesPerInput` apart).
    @inline(__always)
    private static func float(
        _ w: UnsafePointer<UInt8>, _ columns: Int, _ groups: Range<Int>, _ x: UnsafePointer<Float>, _ xstride: Int,
        _ tokens: Int, _ out: UnsafeMutablePointer<Float>, _ ostride: Int, bytesPerInput: Int,
        _ load: (UnsafeRawPointer) -> SIMD8<Float>
    ) {
        let raw = UnsafeRawPointer(w)
        for g in groups {
            let wg = raw + g * columns * bytesPerInput
            for t in 0..<tokens {
                var acc = SIMD8<Float>()
                let xt = x + t * xstride
                for k in 0..<columns { acc = acc + load(wg + k * bytesPerInput) * xt[k] }
                (UnsafeMutableRawPointer(out + t * ostride + 8 * g)).storeBytes(of: acc, as: SIMD8<Float>.self)
            }
        }
    }

    static func f32(
        _ w: UnsafePointer<UInt8>, _ columns: Int, _ groups: Range<Int>, _ x: UnsafePointer<Float>, _ xstride: Int,
        _ tokens: Int, _ out: UnsafeMutablePointer<Float>, _ ostride: Int
    ) {
        float(w, columns, groups, x, xstride, tokens, out, ostride, bytesPerInput: 32) { $0.loadUnaligned(as: SIMD8<Float>.self) }
    }

    static func f16(
        _ w: UnsafePointer<UInt8>, _ columns: Int, _ groups: Range<Int>, _ x: UnsafePointer<Float>, _ xstride: Int,
        _ tokens: Int, _ out: UnsafeMutablePointer<Float>, _ ostride: Int
    ) {
        float(w, columns, groups, x, xstride, tokens, out, ostride, bytesPerInput: 16) {
            SIMD8<Float>($0.loadUnaligned(as: SIMD8<Float16>.self))
        }
    }
}

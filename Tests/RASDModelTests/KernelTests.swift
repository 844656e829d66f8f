import Foundation
import RASDModel
import Testing

/// The matrix kernels against brute force on real and random weights.
@Suite struct KernelTests {
    /// llama.cpp's Q8_1 activation quantization, written out independently (scales stored at
    /// F16 precision, as llama.cpp's blocks store them).
    static func quantize(_ x: [Float]) -> (q: [Int32], d: [Float]) {
        var q: [Int32] = [], d: [Float] = []
        for b in stride(from: 0, to: x.count, by: 32) {
            let block = x[b..<(b + 32)]
            let amax = block.map(abs).max() ?? 0
            let scale = amax / 127
            d.append(Float(Float16(scale)))
            let inverse: Float = scale == 0 ? 0 : 1 / scale  // llama.cpp multiplies by 1/d
            q += block.map { Int32(($0 * inverse).rounded()) }
        }
        return (q, d)
    }

    /// Σ over blocks of dequantized weights times dequantized 8-bit inputs, in Double, and the
    /// sum of the terms' magnitudes (the scale of legitimate rounding differences).
    static func reference(_ w: [Float], _ x: [Float]) -> (value: Double, magnitude: Double) {
        let (q, d) = quantize(x)
        var sum = 0.0, magnitude = 0.0
        for i in x.indices {
            let term = Double(w[i]) * Double(q[i]) * Double(d[i / 32])
            sum += term
            magnitude += abs(term)
        }
        return (sum, magnitude)
    }

    /// The logits' argmax (the greedy token) against a plain first-wins scan: ties, -inf, NaN,
    /// every length and offset around the 8-lane blocks.
    @Test func argmaxMatchesAFirstWinsScan() {
        var rng = SplitMix(seed: 7)
        let specials: [Float] = [-.infinity, .infinity, .nan, 0, -0.0]
        for trial in 0..<4000 {
            let count = 1 + Int(rng.next() % 48)
            // Few distinct values, so that ties are common; some specials.
            let values: [Float] = (0..<count).map { _ in
                rng.next() % 9 == 0 ? specials[Int(rng.next() % 5)] : Float(Int(rng.next() % 7) - 3) * 0.5
            }
            let lower = Int(rng.next() % UInt64(count + 1)), range = lower..<count
            var expected = (value: -Float.infinity, index: lower)
            for i in range where values[i] > expected.value { expected = (values[i], i) }
            let got = values.withUnsafeBufferPointer { $0.baseAddress.map { PortableMath.argmax($0, range) } }
            #expect(got?.index == expected.index && got?.value == expected.value, "trial \(trial): \(values) in \(range)")
        }
    }

    /// The draft head's softmax: the C kernel and its portable twin give the same bits, within
    /// float rounding of a softmax in Double, for lengths around the 8-lane blocks.
    @Test(.enabled(if: KernelPath.available.contains(.avx2)))
    func softmaxPathsAgreeAndMatchDouble() {
        var rng = SplitMix(seed: 11)
        for count in [1, 2, 7, 8, 9, 15, 16, 17, 64, 100, 8192] {
            let x: [Float] = (0..<count).map { _ in Float(Int(rng.next() % 4001) - 2000) / 100 }
            var c = [Float](repeating: 0, count: count), portable = c
            x.withUnsafeBufferPointer { xs in
                guard let base = xs.baseAddress else { return }
                c.withUnsafeMutableBufferPointer { PortableMath.softmax(base, into: $0.baseAddress!, count: count, path: .avx2) }
                portable.withUnsafeMutableBufferPointer { PortableMath.softmax(base, into: $0.baseAddress!, count: count, path: .portable) }
            }
            #expect(c.map(\.bitPattern) == portable.map(\.bitPattern), "length \(count)")
            let m = Double(x.max() ?? 0), e = x.map { Foundation.exp(Double($0) - m) }, sum = e.reduce(0, +)
            for i in 0..<count { #expect(abs(Double(portable[i]) - e[i] / sum) <= 2e-5 * e[i] / sum + 1e-30, "length \(count), \(i)") }
        }
    }

    @Test func quantizedKernelsMatchBruteForceOnRealWeights() throws {
        let model = try Fixtures.model.get()
        var rng = SplitMix(seed: 1)
        let matrices: [(String, WeightMatrix)] = [
            ("Q4_1 attn_q", model.layers[0].query), ("Q4_1 ffn_down", model.layers[3].down), ("Q8_0 output", model.output),
        ]
        for (name, m) in matrices {
            // Five random tokens, then one whose blocks hold the quantizer's edge cases.
            let tokens = 6
            let x = (0..<(5 * m.columns)).map { _ in Float(Int(rng.below(2001)) - 1000) / 300 } + Self.edgeToken(m.columns)
            let rows = [0, 1, 7, 8, m.rows / 2, m.rows - 1]
            let weightRows = rows.map { m.row($0) }
            var results: [KernelPath: [Float]] = [:]
            for path in KernelPath.available {
                let y = try m.apply(to: x, tokens: tokens, kernels: path)
                results[path] = y
                for t in 0..<tokens {
                    let xt = Array(x[(t * m.columns)..<((t + 1) * m.columns)])
                    for (r, w) in zip(rows, weightRows) {
                        let (expected, magnitude) = Self.reference(w, xt)
                        let got = Double(y[t * m.rows + r])
                        // Q4_1 rounds d·Σq to F16 for its min term, so allow 1e-3 of the terms'
                        // total magnitude (a wrong dot product is off by a large share of it).
                        #expect(abs(got - expected) <= 1e-3 * magnitude + 1e-5, "\(name) \(path) row \(r) token \(t): \(got) vs \(expected)")
                    }
                }
            }
            for path in KernelPath.available {
                #expect(results[path]?.bits == results[.portable]?.bits, "\(name): \(path) differs from portable")
            }
            // A token's outputs do not depend on the other tokens of the batch.
            let alone = try m.apply(to: Array(x[(3 * m.columns)..<(4 * m.columns)]), tokens: 1)
            #expect(alone.bits == Array(results[.portable]?[(3 * m.rows)..<(4 * m.rows)] ?? []).bits, "\(name)")
        }
    }

    /// Blocks that take the quantizer's edge branches: exact halves after scaling (max 127, so
    /// the scale is 1: ties round away from zero), an all-zero block (scale 0), tiny values and
    /// a block whose maximum is negative.
    static func edgeToken(_ columns: Int) -> [Float] {
        (0..<columns).map { i in
            let j = i % 32
            switch (i / 32) % 4 {
            case 0: return j == 0 ? 127 : Float(j % 7) - 3.5 + (j % 2 == 0 ? 0 : 1)
            case 1: return 0
            case 2: return Float(j) * 1e-30
            default: return j == 5 ? -127 : 126.5 - Float(j) * 8
            }
        }
    }

    @Test func floatMatricesMatchBruteForce() throws {
        var rng = SplitMix(seed: 2)
        let rows = 13, columns = 64
        let values = (0..<(rows * columns)).map { _ in Float(Int(rng.below(2001)) - 1000) / 512 }
        let x = (0..<(3 * columns)).map { _ in Float(Int(rng.below(2001)) - 1000) / 256 }
        for format in [WeightMatrix.Format.f32, .f16] {
            let m = try WeightMatrix(rows: rows, columns: columns, values: values, format: format)
            let y = try m.apply(to: x, tokens: 3)
            #expect(y.count == 3 * rows)
            for t in 0..<3 {
                for r in 0..<rows {
                    var expected = 0.0
                    for k in 0..<columns {
                        let w = format == .f16 ? Float(Float16(values[r * columns + k])) : values[r * columns + k]
                        expected += Double(w) * Double(x[t * columns + k])
                    }
                    #expect(abs(Double(y[t * rows + r]) - expected) < 1e-4, "\(format) row \(r)")
                }
            }
            #expect(m.row(5) == (0..<columns).map { format == .f16 ? Float(Float16(values[5 * columns + $0])) : values[5 * columns + $0] })
        }
        #expect(throws: EngineError.self) { try WeightMatrix(rows: 2, columns: 30, values: [Float](repeating: 0, count: 60)) }
    }
}

import CRASDKernels
import Foundation

/// Float kernels outside the matrix products, written so that each has one order of
/// operations shared by the portable path and the C path (`rasd_attention_avx2`, `rasd_exp`),
/// which therefore agree bit for bit.
package enum PortableMath {
    private static let magic: Float = 12_582_912  // 1.5 * 2^23
    private static let magicBits = Int32(bitPattern: magic.bitPattern)

    /// exp(x) by the Cephes polynomial with plain multiplies and adds (no FMA, no libm), so
    /// the compiler vectorizes loops over it and the C kernels reproduce it exactly; about
    /// 2 ulp, clamped to [-87.3, 88.7].
    @inline(__always)
    static func exp(_ input: Float) -> Float {
        let x = input < -87.3 ? -87.3 : (input > 88.7 ? 88.7 : input)
        let n = (x * 1.44269504088896341 + magic) - magic
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        var y = p * (r * r)
        y = y + r
        y = y + 1
        let exponent = (Int32(bitPattern: (n + magic).bitPattern) &- magicBits &+ 127) << 23
        return y * Float(bitPattern: UInt32(bitPattern: exponent))
    }

    /// SwiGLU in place: `gate[r] = gate[r] / (1 + exp(-gate[r])) * up[r]` for `r` in `rows`,
    /// in C (`rasd_swiglu_avx2`, the same operations) on the C kernel paths.
    @inline(__always)
    static func swiglu(gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>, rows: Range<Int>, path: KernelPath) {
        guard !rows.isEmpty else { return }
        if path == .portable {
            for r in rows { gate[r] = gate[r] / (1 + exp(-gate[r])) * up[r] }
        } else {
            rasd_swiglu_avx2(gate + rows.lowerBound, up + rows.lowerBound, rows.count)
        }
    }

    /// `out = softmax(x)` over `count` floats: `exp(x - max)` summed as ``expNormalizer(_:count:maximum:)``,
    /// then each times `1 / sum`; in C (`rasd_softmax_avx2`, the same operations) on the C kernel
    /// paths. `out` may be `x`.
    package static func softmax(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, path: KernelPath) {
        guard count > 0 else { return }
        if path != .portable {
            rasd_softmax_avx2(x, out, count)
            return
        }
        var maximum = -Float.infinity
        for i in 0..<count where x[i] > maximum { maximum = x[i] }
        if UnsafePointer(out) != x { out.update(from: x, count: count) }
        let inverse = expNormalizer(out, count: count, maximum: maximum)
        for i in 0..<count { out[i] = out[i] * inverse }
    }

    /// RMSNorm as llama.cpp computes it, for rows `rows` of `width` floats: mean of squares
    /// summed in Double, then `x * (1 / sqrt(mean + epsilon))`, then times the weight.
    static func rmsNorm(
        _ x: UnsafePointer<Float>, weight: [Float], epsilon: Float, width d: Int, rows: Range<Int>,
        into out: UnsafeMutablePointer<Float>
    ) {
        weight.withUnsafeBufferPointer { w in
            for t in rows {
                let xt = x + t * d, ot = out + t * d
                var sum: Double = 0
                for i in 0..<d { sum += Double(xt[i] * xt[i]) }
                let mean = Float(sum / Double(d))
                let scale = 1 / sqrtf(mean + epsilon)
                for i in 0..<d { ot[i] = (xt[i] * scale) * w[i] }
            }
        }
    }

    /// The largest of `values[range]` and its index, the first one on ties: what a scan keeping
    /// the first value that is `>` all before it gives (NaN never wins; `(-inf, lowerBound)` when
    /// nothing beats -inf). Two vector passes, one for the maximum and one for its first place,
    /// instead of a compare-and-branch per logit.
    package static func argmax(_ values: UnsafePointer<Float>, _ range: Range<Int>) -> (value: Float, index: Int) {
        let end = range.upperBound
        var i = range.lowerBound, lanes = SIMD8<Float>(repeating: -.infinity)
        while i + 8 <= end {
            let v = UnsafeRawPointer(values + i).loadUnaligned(as: SIMD8<Float>.self)
            lanes.replace(with: v, where: v .> lanes)
            i += 8
        }
        var maximum = lanes.max()
        for j in i..<end where values[j] > maximum { maximum = values[j] }
        guard maximum > -.infinity else { return (-.infinity, range.lowerBound) }
        var j = range.lowerBound
        while j + 8 <= end, !any(UnsafeRawPointer(values + j).loadUnaligned(as: SIMD8<Float>.self) .== maximum) { j += 8 }
        while values[j] != maximum { j += 1 }
        return (maximum, j)
    }

    /// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), as `fold8` in the C kernels.
    @inline(__always)
    static func fold(_ v: SIMD8<Float>) -> Float {
        let h = v.lowHalf + v.highHalf
        return (h[0] + h[2]) + (h[1] + h[3])
    }

    /// Dot product: 8 lanes, folded, then the tail in order.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 8 <= n {
            acc = acc + (ra + i * 4).loadUnaligned(as: SIMD8<Float>.self) * (rb + i * 4).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var total = fold(acc)
        while i < n {
            total = total + a[i] * b[i]
            i += 1
        }
        return total
    }

    /// `scores[j] = exp(scores[j] - maximum)` for `j < count`; returns 1 / their sum (8 lanes,
    /// folded, then the tail in order), as `exp_normalizer` in the C kernels.
    @inline(__always)
    static func expNormalizer(_ scores: UnsafeMutablePointer<Float>, count: Int, maximum: Float) -> Float {
        for j in 0..<count { scores[j] = exp(scores[j] - maximum) }
        var acc = SIMD8<Float>()
        var j = 0
        let raw = UnsafeRawPointer(scores)
        while j + 8 <= count {
            acc = acc + (raw + j * 4).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var sum = fold(acc)
        while j < count {
            sum = sum + scores[j]
            j += 1
        }
        return 1 / sum
    }

    /// The portable twin of `rasd_attention_avx2` (see its documentation in `rasd_kernels.h`).
    static func attention(
        q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int, committed: Int,
        chain: UnsafePointer<Int32>, chainCount: Int, hd: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>
    ) {
        let count = committed + chainCount
        @inline(__always) func slot(_ j: Int) -> Int { j < committed ? j : Int(chain[j - committed]) }
        var maximum = -Float.infinity
        for j in 0..<count {
            let s = dot(q, keys + slot(j) * stride, hd) * scale
            scores[j] = s
            maximum = s > maximum ? s : maximum
        }
        let inverse = expNormalizer(scores, count: count, maximum: maximum)
        out.initialize(repeating: 0, count: hd)
        let ro = UnsafeMutableRawPointer(out)
        for k in 0..<count {
            let v = values + slot(k) * stride
            let p = scores[k] * inverse
            let vp = SIMD8<Float>(repeating: p)
            var i = 0
            while i + 8 <= hd {
                let r = (ro + i * 4).loadUnaligned(as: SIMD8<Float>.self) + vp * UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
                (ro + i * 4).storeBytes(of: r, as: SIMD8<Float>.self)
                i += 8
            }
            while i < hd {
                out[i] = out[i] + p * v[i]
                i += 1
            }
        }
    }

    /// `count` floats to F16 bits (nearest even) at `destination`: the KV cache's storage.
    @inline(__always)
    static func storeHalves(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int, portable: Bool) {
        if portable {
            for i in 0..<count { destination[i] = Float16(source[i]).bitPattern }
        } else {
            rasd_store_f16_avx2(source, destination, count)
        }
    }

    /// Dot product with fused multiply-adds: 8 lanes, folded, then the tail in order (the
    /// order of `rasd_attention_f16_avx2`'s scores).
    @inline(__always)
    static func fusedDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 8 <= n {
            acc = acc.addingProduct((ra + i * 4).loadUnaligned(as: SIMD8<Float>.self), (rb + i * 4).loadUnaligned(as: SIMD8<Float>.self))
            i += 8
        }
        var total = fold(acc)
        while i < n {
            total = total.addingProduct(a[i], b[i])
            i += 1
        }
        return total
    }

    /// The portable twin of `rasd_attention_f16_avx2` (see its documentation in
    /// `rasd_kernels.h`): the same operations per query, one query at a time.
    static func attention(
        q: UnsafePointer<Float>, qStride: Int, group: Int, queries: Int, keys: UnsafePointer<UInt16>,
        values: UnsafePointer<UInt16>, stride: Int, committed: Int, chains: UnsafePointer<Int32>,
        chainStart: UnsafePointer<Int32>, hd: Int, scale: Float, scores: UnsafeMutablePointer<Float>, scoresStride: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        let row = UnsafeMutablePointer<Float>.allocate(capacity: hd)
        defer { row.deallocate() }
        @inline(__always) func widen(_ source: UnsafePointer<UInt16>) {
            for i in 0..<hd { row[i] = Float(Float16(bitPattern: source[i])) }
        }
        for j in 0..<queries {
            let node = j / group, head = j % group
            let qj = q + node * qStride + head * hd, sj = scores + j * scoresStride, oj = out + node * outStride + head * hd
            let chain = chains + Int(chainStart[node]), chainCount = Int(chainStart[node + 1] - chainStart[node])
            let count = committed + chainCount
            @inline(__always) func slot(_ k: Int) -> Int { k < committed ? k : Int(chain[k - committed]) }
            var maximum = -Float.infinity
            for k in 0..<count {
                widen(keys + slot(k) * stride)
                let s = fusedDot(qj, row, hd) * scale
                sj[k] = s
                maximum = s > maximum ? s : maximum
            }
            let inverse = expNormalizer(sj, count: count, maximum: maximum)
            oj.initialize(repeating: 0, count: hd)
            let ro = UnsafeMutableRawPointer(oj)
            for k in 0..<count {
                widen(values + slot(k) * stride)
                let p = sj[k] * inverse
                let vp = SIMD8<Float>(repeating: p)
                var i = 0
                while i + 8 <= hd {
                    let r = (ro + i * 4).loadUnaligned(as: SIMD8<Float>.self)
                        .addingProduct(vp, UnsafeRawPointer(row + i).loadUnaligned(as: SIMD8<Float>.self))
                    (ro + i * 4).storeBytes(of: r, as: SIMD8<Float>.self)
                    i += 8
                }
                while i < hd {
                    oj[i] = oj[i].addingProduct(p, row[i])
                    i += 1
                }
            }
        }
    }
}

import Foundation

/// What this machine allows the engine's matrix work, measured with the engine's own kernels
/// and threads: how fast a batch of tokens multiplies when the weights are already in cache
/// (arithmetic-bound), and how fast one token streams every weight from memory
/// (memory-bound).
///
/// Together they put a floor under the cost of verifying `n` tree nodes relative to one
/// single-token step, whatever the rest of the code does: each pass reads every weight once,
/// and must do `n` tokens' multiply-adds. `rasd-index bench engine` prints the floor beside
/// the measured verify-cost curve, so that the distance to the machine's limit is a figure.
public struct MatrixRoofline: Sendable, Codable, Equatable {
    /// Multiply-adds per second of a batch of ``batch`` tokens, with the matrix in cache.
    public var multiplyAddsPerSecond: Double
    /// Tokens in that batch.
    public var batch: Int
    /// Weight bytes per second of a one-token pass over every matrix (layers and output head).
    public var bytesPerSecond: Double
    /// Multiply-adds of one token through every matrix.
    public var multiplyAddsPerToken: Double
    /// Bytes of every matrix.
    public var weightBytes: Double

    /// Creates a roofline from measurements.
    public init(
        multiplyAddsPerSecond: Double, batch: Int, bytesPerSecond: Double, multiplyAddsPerToken: Double, weightBytes: Double
    ) {
        self.multiplyAddsPerSecond = multiplyAddsPerSecond
        self.batch = batch
        self.bytesPerSecond = bytesPerSecond
        self.multiplyAddsPerToken = multiplyAddsPerToken
        self.weightBytes = weightBytes
    }

    /// The least time of the matrix work of `n` tokens in one pass, relative to one token's.
    public func floor(tokens n: Int) -> Double {
        let memory = weightBytes / bytesPerSecond
        func arithmetic(_ k: Int) -> Double { Double(k) * multiplyAddsPerToken / multiplyAddsPerSecond }
        return max(memory, arithmetic(n)) / max(memory, arithmetic(1))
    }
}

extension InferenceSession {
    /// Measures ``MatrixRoofline`` on this session's kernels and threads: the median of
    /// `repeats` one-token passes over every matrix of the model, and the median rate of
    /// `batch`-token products with the first layer's largest matrix, repeated so that it stays
    /// in cache. Leaves the KV cache alone.
    public func measureMatrixRoofline(batch: Int = 16, repeats: Int = 5) -> MatrixRoofline {
        let batch = max(1, batch)
        let matrices = model.layers.flatMap(\.matrices) + [model.output]
        let widest = matrices.map(\.columns).max() ?? 1
        let tallest = matrices.map(\.paddedRows).max() ?? 8
        // Inputs: random values (they do not change the kernels' timing), quantized once per
        // input width.
        let input = AlignedBuffer(byteCount: batch * widest * 4)
        let x = input.pointer(Float.self)
        for i in 0..<batch * widest { x[i] = Float.random(in: -1...1) }
        var quantized: [Int: QuantizedActivations] = [:]
        for columns in Set(matrices.map(\.columns)) {
            let q = QuantizedActivations(columns: columns, capacity: batch, kernels: kernelPath)
            q.quantize(x, rows: batch, stride: widest)
            quantized[columns] = q
        }
        let outputBuffer = AlignedBuffer(byteCount: batch * tallest * 4)
        let output = outputBuffer.pointer(Float.self)
        let path = kernelPath
        func run(_ m: WeightMatrix, tokens: Int) {
            guard let q = quantized[m.columns] else { return }
            pool.runShares(m.groups) { groups in
                m.multiply(
                    x: x, xStride: widest, quantized: q, tokens: tokens, output: output, outputStride: tallest,
                    groups: groups, path: path)
            }
        }
        func seconds(_ body: () -> Void) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

        let passes = (0..<max(1, repeats)).map { _ in seconds { for m in matrices { run(m, tokens: 1) } } }
        let bytes = Double(matrices.reduce(0) { $0 + $1.byteCount })
        let multiplyAdds = Double(matrices.reduce(0) { $0 + $1.rows * $1.columns })

        let layer = model.layers[0]
        let largest = layer.matrices.max { $0.byteCount < $1.byteCount } ?? layer.gate
        run(largest, tokens: batch)  // into cache
        let inner = 8
        let rates = (0..<max(1, repeats)).map { _ in
            Double(largest.rows * largest.columns * batch * inner) / seconds { for _ in 0..<inner { run(largest, tokens: batch) } }
        }
        return MatrixRoofline(
            multiplyAddsPerSecond: median(rates), batch: batch, bytesPerSecond: bytes / median(passes),
            multiplyAddsPerToken: multiplyAdds, weightBytes: bytes)
    }
}

import CRASDKernels
import Foundation

/// The running state of a ``DraftHead`` over one context: its own KV cache of committed pairs
/// (a target feature and the token after it) and the tentative nodes of the draft tree being
/// grown.
///
/// Committed pair `j` sits at position `j` and KV slot `j`. A call to
/// ``forward(tokens:features:parents:logitNodes:)`` appends tentative nodes: node `t` (counted
/// over all calls since the last commit) has KV slot `committedLength + t`, position
/// `committedLength + depth` (depth 0 below -1) and attends to the committed pairs and its own
/// ancestors — the same tree attention as the target's verification. ``commitPrefix(_:)``
/// keeps a leading chain of tentative nodes; ``discardTentative()`` drops the rest.
///
/// A session is used from one thread at a time; it runs its own worker threads or the target's
/// (``init(head:capacity:sharingThreadsOf:)``).
public final class DraftHeadSession {
    public let head: DraftHead
    /// Pairs the KV cache can hold (committed plus tentative).
    public let capacity: Int
    public let kernelPath: KernelPath
    /// Committed pairs.
    public private(set) var committedLength = 0
    /// Tentative nodes since the last commit.
    public var tentativeCount: Int { tentativeParents.count }
    /// Threads computing each forward call, the caller included (shared with the target when
    /// the session was made with ``init(head:capacity:sharingThreadsOf:)``).
    public var threadCount: Int { pool.threadCount }

    private let pool: WorkerPool
    private let keys: AlignedBuffer, values: AlignedBuffer
    private var tentativeParents: [Int32] = []
    private var tentativeDepths: [Int] = []
    private let ropeInverseFrequencies: [Float]
    private let scratch: HeadScratch

    /// The predicted features of the last forward call's nodes (`nodes × embeddingLength`).
    public private(set) var predictedFeatures: [Float] = []
    /// The draft-vocabulary probabilities of the last call's `logitNodes`, row by row
    /// (`count × vocabulary.count`; softmax over the draft vocabulary).
    public private(set) var probabilities: [Float] = []

    /// Creates a session with threads of its own.
    /// - Parameters:
    ///   - capacity: pairs the KV cache holds (the target context's length is enough).
    ///   - threads: threads per forward call (the calling thread included).
    public convenience init(head: DraftHead, capacity: Int, threads: Int = 2, kernels: KernelPath? = nil) throws {
        guard (1...256).contains(threads) else {
            throw EngineError.invalidArgument("a draft head session needs 1...256 threads, not \(threads)")
        }
        try self.init(head: head, capacity: capacity, pool: WorkerPool(threads: threads), kernels: try kernels ?? KernelPath.fromEnvironment())
    }

    /// Creates a session that runs its parallel sections on `target`'s threads, with its kernel
    /// path.
    ///
    /// A decoder drafts and verifies in turn, so the head and the target never compute at the
    /// same time: sharing the target's threads gives each draft step every core without
    /// starting more threads than cores. Use the two sessions from one thread at a time.
    public convenience init(head: DraftHead, capacity: Int, sharingThreadsOf target: InferenceSession) throws {
        try self.init(head: head, capacity: capacity, pool: target.pool, kernels: target.kernelPath)
    }

    private init(head: DraftHead, capacity: Int, pool: WorkerPool, kernels: KernelPath) throws {
        guard capacity > 0 else {
            throw EngineError.invalidArgument("a draft head session needs a positive capacity, not \(capacity)")
        }
        self.head = head
        self.capacity = capacity
        kernelPath = kernels
        scratch = HeadScratch(kernels: kernelPath)
        self.pool = pool
        let kvBytes = capacity * head.config.kvWidth * 4
        keys = AlignedBuffer(byteCount: kvBytes)
        values = AlignedBuffer(byteCount: kvBytes)
        // Pair (2i, 2i+1) turns by pos · base^(-2i/n), the power by repeated multiplication in
        // Float as the target's RoPE does.
        let n = head.config.headDimension
        let step = powf(head.config.ropeFrequencyBase, -2 / Float(n))
        var theta: Float = 1
        var inverse: [Float] = []
        for _ in 0..<(n / 2) {
            inverse.append(theta)
            theta *= step
        }
        ropeInverseFrequencies = inverse
    }

    /// Forgets everything.
    public func reset() {
        committedLength = 0
        discardTentative()
    }

    /// Drops committed pairs after the first `length` (and every tentative node).
    public func truncate(to length: Int) throws {
        guard length >= 0, length <= committedLength else {
            throw EngineError.invalidArgument("cannot truncate a draft head context of \(committedLength) pairs to \(length)")
        }
        committedLength = length
        discardTentative()
    }

    /// Drops every tentative node.
    public func discardTentative() {
        tentativeParents.removeAll(keepingCapacity: true)
        tentativeDepths.removeAll(keepingCapacity: true)
    }

    /// Commits tentative nodes `0..<count`, which must be a chain from the committed context
    /// (node `i`'s parent is `i - 1`); later tentative nodes stay, renumbered from 0, and those
    /// below node `count - 1` now hang from the committed context.
    public func commitPrefix(_ count: Int) throws {
        guard count >= 0, count <= tentativeCount else {
            throw EngineError.invalidPath("cannot commit \(count) of \(tentativeCount) tentative nodes")
        }
        for i in 0..<count where tentativeParents[i] != Int32(i - 1) {
            throw EngineError.invalidPath("tentative node \(i)'s parent is \(tentativeParents[i]), not \(i - 1): not a chain")
        }
        for i in count..<tentativeCount where tentativeParents[i] >= 0 && tentativeParents[i] < Int32(count - 1) {
            throw EngineError.invalidPath("tentative node \(i) hangs from committed node \(tentativeParents[i]), not the chain's end")
        }
        // KV slots are committedLength + index, so committing a leading chain moves nothing.
        committedLength += count
        tentativeParents.removeFirst(count)
        tentativeDepths.removeFirst(count)
        for i in tentativeParents.indices {
            tentativeParents[i] -= Int32(count)
            if tentativeParents[i] < 0 { tentativeParents[i] = -1 }
            tentativeDepths[i] -= count
        }
    }

    /// Runs the head over new tentative nodes.
    ///
    /// - Parameters:
    ///   - tokens: the token of each node (the token after its feature).
    ///   - features: each node's input feature, row-major (`tokens.count × embeddingLength`): the
    ///     target's normalized hidden state, or a predicted feature of the head.
    ///   - parents: each node's parent: -1 (directly after the committed pairs) or a tentative
    ///     node (of an earlier call, or earlier in this one).
    ///   - logitNodes: indices into this call's nodes whose draft distribution is wanted
    ///     (``probabilities``, in this order).
    /// - Throws: ``EngineError`` for a malformed tree, bad tokens or a full cache.
    public func forward(tokens: [UInt32], features: UnsafeBufferPointer<Float>, parents: [Int32], logitNodes: [Int]) throws {
        let c = head.config
        let d = c.embeddingLength, n = tokens.count
        guard n > 0, parents.count == n, features.count == n * d, let featureBase = features.baseAddress else {
            throw EngineError.invalidTree("\(n) tokens, \(parents.count) parents and \(features.count) feature values (need \(n) × \(d))")
        }
        let first = tentativeCount
        for i in 0..<n {
            let p = Int(parents[i])
            guard p >= -1, p < first + i else { throw EngineError.invalidTree("parents[\(i)] is \(p) with \(first + i) tentative nodes before it") }
            guard Int(tokens[i]) < head.target.config.vocabularySize else {
                throw EngineError.tokenOutOfRange(token: tokens[i], vocabularySize: head.target.config.vocabularySize)
            }
        }
        for r in logitNodes where r < 0 || r >= n { throw EngineError.invalidArgument("logit node \(r) is not one of the \(n) nodes") }
        guard committedLength + first + n <= capacity else {
            throw EngineError.contextFull(needed: committedLength + first + n, capacity: capacity)
        }
        for i in 0..<n {
            tentativeParents.append(parents[i])
            tentativeDepths.append(parents[i] < 0 ? 0 : tentativeDepths[Int(parents[i])] + 1)
        }

        let s = scratch
        s.reserve(nodes: n, logitRows: logitNodes.count, head: head)
        let path = kernelPath
        let ff = c.feedForwardLength, attentionWidth = c.headCount * c.headDimension, kv = c.kvWidth

        // Input: [embedding(token); feature] per node, then fc + bias.
        let input = s.input.pointer(Float.self)
        for i in 0..<n {
            head.target.tokenEmbedding.dequantizeRow(Int(tokens[i]), into: input + i * 2 * d)
            (input + i * 2 * d + d).update(from: featureBase + i * d, count: d)
        }
        let h = s.h.pointer(Float.self), xn = s.xn.pointer(Float.self)
        s.wide.quantize(input, rows: n, stride: 2 * d)
        multiply([(head.fc, h, d)], input: input, stride: 2 * d, quantized: s.wide, nodes: n, path: path)
        for i in 0..<n { for j in 0..<d { h[i * d + j] += head.fcBias[j] } }

        // Attention.
        rmsNorm(h, head.attentionNorm, into: xn, rows: n)
        s.narrow.quantize(xn, rows: n, stride: d)
        let q = s.q.pointer(Float.self), k = s.k.pointer(Float.self), v = s.v.pointer(Float.self)
        multiply([(head.query, q, attentionWidth), (head.key, k, kv), (head.value, v, kv)], input: xn, stride: d, quantized: s.narrow, nodes: n, path: path)
        let keyCache = keys.pointer(Float.self), valueCache = values.pointer(Float.self)
        let hd = c.headDimension, pairs = hd / 2
        for i in 0..<n {
            let position = Float(committedLength + tentativeDepths[first + i])
            for p in 0..<pairs {
                let theta = position * ropeInverseFrequencies[p]
                let cs = cosf(theta), sn = sinf(theta)
                for hq in 0..<c.headCount { rotate(q + i * attentionWidth + hq * hd, p, cs, sn) }
                for hk in 0..<c.kvHeadCount { rotate(k + i * kv + hk * hd, p, cs, sn) }
            }
            let slot = committedLength + first + i
            (keyCache + slot * kv).update(from: k + i * kv, count: kv)
            (valueCache + slot * kv).update(from: v + i * kv, count: kv)
        }
        let attention = s.attention.pointer(Float.self)
        let scale = 1 / sqrtf(Float(hd))
        let group = c.headCount / c.kvHeadCount
        // Each new node's chain: its KV slots from the root down (tentative node t in slot
        // committedLength + t).
        let (chains, chainStart) = ancestorChains(of: first..<(first + n), parents: tentativeParents, base: committedLength)
        // One (node, query head) per item, spread over the pool; each chunk has its own scores.
        let items = n * c.headCount, chunks = pool.chunks(for: items)
        let scoreCount = committedLength + first + n
        let scoreStride = (scoreCount + 15) / 16 * 16
        let scores = s.scores(count: chunks * scoreStride)
        let committed = committedLength
        chains.withUnsafeBufferPointer { chains in
            guard let chainBase = chains.baseAddress else { return }
            pool.run(chunks: chunks) { chunk in
                let rowScores = scores + chunk * scoreStride
                for item in share(items, worker: chunk, of: chunks) {
                    let i = item / c.headCount, hq = item % c.headCount
                    let offset = (hq / group) * hd
                    let qh = UnsafePointer(q + i * attentionWidth + hq * hd), out = attention + i * attentionWidth + hq * hd
                    let chain = chainBase + Int(chainStart[i]), chainCount = Int(chainStart[i + 1] - chainStart[i])
                    if path == .portable {
                        PortableMath.attention(
                            q: qh, keys: keyCache + offset, values: valueCache + offset, stride: kv, committed: committed,
                            chain: chain, chainCount: chainCount, hd: hd, scale: scale, scores: rowScores, out: out)
                    } else {
                        rasd_attention_avx2(
                            qh, keyCache + offset, valueCache + offset, kv, committed, chain, chainCount, hd, scale, rowScores, out)
                    }
                }
            }
        }
        let projection = s.projection.pointer(Float.self)
        s.narrow.quantize(attention, rows: n, stride: attentionWidth)
        multiply([(head.attentionOutput, projection, d)], input: attention, stride: attentionWidth, quantized: s.narrow, nodes: n, path: path)
        for i in 0..<(n * d) { h[i] += projection[i] }

        // Feed-forward.
        rmsNorm(h, head.ffnNorm, into: xn, rows: n)
        s.narrow.quantize(xn, rows: n, stride: d)
        let gate = s.gate.pointer(Float.self), up = s.up.pointer(Float.self)
        let ffStride = head.gate.paddedRows
        multiply([(head.gate, gate, ffStride), (head.up, up, ffStride)], input: xn, stride: d, quantized: s.narrow, nodes: n, path: path)
        for i in 0..<n { PortableMath.swiglu(gate: gate + i * ffStride, up: up + i * ffStride, rows: 0..<ff, path: path) }
        s.feedForward.quantize(gate, rows: n, stride: ffStride)
        multiply([(head.down, projection, d)], input: gate, stride: ffStride, quantized: s.feedForward, nodes: n, path: path)
        for i in 0..<(n * d) { h[i] += projection[i] }

        // The predicted features, and the draft distribution of the requested nodes.
        predictedFeatures.removeAll(keepingCapacity: true)
        predictedFeatures.append(contentsOf: repeatElement(0, count: n * d))
        predictedFeatures.withUnsafeMutableBufferPointer { out in
            if let base = out.baseAddress { rmsNorm(h, head.outputNorm, into: base, rows: n) }
        }
        let rows = logitNodes.count
        let v0 = head.vocabulary.count, stride = head.output.paddedRows
        probabilities.removeAll(keepingCapacity: true)
        guard rows > 0 else { return }
        let selected = s.xn.pointer(Float.self)
        predictedFeatures.withUnsafeBufferPointer { f in
            guard let base = f.baseAddress else { return }
            for (r, node) in logitNodes.enumerated() { (selected + r * d).update(from: base + node * d, count: d) }
        }
        s.narrow.quantize(selected, rows: rows, stride: d)
        let logits = s.logits.pointer(Float.self)
        multiply([(head.output, logits, stride)], input: selected, stride: d, quantized: s.narrow, nodes: rows, path: path)
        probabilities.append(contentsOf: repeatElement(0, count: rows * v0))
        probabilities.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            for r in 0..<rows { PortableMath.softmax(logits + r * stride, into: base + r * v0, count: v0, path: path) }
        }
    }

    @inline(__always)
    private func rotate(_ head: UnsafeMutablePointer<Float>, _ p: Int, _ c: Float, _ s: Float) {
        let a = head[2 * p], b = head[2 * p + 1]
        head[2 * p] = a * c - b * s
        head[2 * p + 1] = a * s + b * c
    }

    /// RMSNorm as the target computes it.
    private func rmsNorm(_ x: UnsafePointer<Float>, _ weight: [Float], into out: UnsafeMutablePointer<Float>, rows: Int) {
        let c = head.config
        PortableMath.rmsNorm(x, weight: weight, epsilon: c.normEpsilon, width: c.embeddingLength, rows: 0..<rows, into: out)
    }

    /// Matrix products of one input, their row groups split across the pool.
    private func multiply(
        _ products: [(WeightMatrix, UnsafeMutablePointer<Float>, Int)], input: UnsafeMutablePointer<Float>, stride: Int,
        quantized: QuantizedActivations, nodes n: Int, path: KernelPath
    ) {
        pool.multiply(products, input: input, inputStride: stride, quantized: quantized, tokens: n, path: path)
    }
}

/// Buffers of a draft head session, grown on demand.
private final class HeadScratch {
    private(set) var nodes = 0
    private(set) var logitRows = 0
    var input = AlignedBuffer(byteCount: 0), h = AlignedBuffer(byteCount: 0), xn = AlignedBuffer(byteCount: 0)
    var q = AlignedBuffer(byteCount: 0), k = AlignedBuffer(byteCount: 0), v = AlignedBuffer(byteCount: 0)
    var attention = AlignedBuffer(byteCount: 0), projection = AlignedBuffer(byteCount: 0)
    var gate = AlignedBuffer(byteCount: 0), up = AlignedBuffer(byteCount: 0)
    var logits = AlignedBuffer(byteCount: 0)
    private var scoreBuffer = AlignedBuffer(byteCount: 0)
    let kernels: KernelPath
    var wide: QuantizedActivations, narrow: QuantizedActivations, feedForward: QuantizedActivations

    init(kernels: KernelPath) {
        self.kernels = kernels
        wide = QuantizedActivations(columns: 32, capacity: 1, kernels: kernels)
        narrow = wide
        feedForward = wide
    }

    func reserve(nodes n: Int, logitRows r: Int, head: DraftHead) {
        let c = head.config
        let d = c.embeddingLength
        if n > nodes {
            nodes = max(n, 2 * nodes, 16)
            let f = nodes * 4
            let attentionWidth = c.headCount * c.headDimension
            input = AlignedBuffer(byteCount: f * 2 * d)
            h = AlignedBuffer(byteCount: f * d)
            xn = AlignedBuffer(byteCount: f * max(d, attentionWidth))
            q = AlignedBuffer(byteCount: f * head.query.paddedRows)
            k = AlignedBuffer(byteCount: f * head.key.paddedRows)
            v = AlignedBuffer(byteCount: f * head.value.paddedRows)
            attention = AlignedBuffer(byteCount: f * attentionWidth)
            projection = AlignedBuffer(byteCount: f * max(head.attentionOutput.paddedRows, head.down.paddedRows))
            gate = AlignedBuffer(byteCount: f * head.gate.paddedRows)
            up = AlignedBuffer(byteCount: f * head.up.paddedRows)
            wide = QuantizedActivations(columns: 2 * d, capacity: nodes, kernels: kernels)
            narrow = QuantizedActivations(columns: max(d, attentionWidth), capacity: nodes, kernels: kernels)
            feedForward = QuantizedActivations(columns: head.gate.paddedRows, capacity: nodes, kernels: kernels)
        }
        if r > logitRows {
            logitRows = max(r, 2 * logitRows, 16)
            logits = AlignedBuffer(byteCount: logitRows * head.output.paddedRows * 4)
        }
    }

    func scores(count: Int) -> UnsafeMutablePointer<Float> {
        let needed = (count + 15) / 16 * 16 * 4
        if scoreBuffer.byteCount < needed { scoreBuffer = AlignedBuffer(byteCount: max(needed, 2 * scoreBuffer.byteCount)) }
        return scoreBuffer.pointer(Float.self)
    }
}

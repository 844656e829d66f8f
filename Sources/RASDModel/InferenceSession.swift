import CRASDKernels
import Foundation

/// One decoding context over a ``LlamaModel``: the KV cache of the committed tokens, and the
/// forward passes that extend it (prefill, single steps, tree verification).
///
/// ## Tree verification
/// ``verify(tokens:parents:)`` runs one forward pass over a batch of tree nodes. `parents[i]`
/// is an earlier node or -1 ("directly after the committed context"); node `i` sits at
/// position `committedLength + depth(i)` (depth 0 for children of -1) and attends to the
/// committed context and to its own ancestors, itself included. Node 0 is usually the pending
/// token (the last accepted or bonus token, whose KV is not computed yet) with the speculative
/// nodes below it. ``commit(path:)`` then keeps the KV entries of one root-to-node chain and
/// drops the rest; ``truncate(to:)`` rolls the context back.
///
/// ## Batch invariance
/// A token's logits and hidden state are bit-identical whether it is computed alone, in a
/// prompt batch or inside any tree, with any thread count: every kernel computes each output
/// with one fixed order of float operations (see ``KernelPath``), attention reads the visible
/// keys in position order with one algorithm, and nothing switches on the batch size. So
/// speculative decoding through verify/commit reproduces greedy decoding token for token.
///
/// A session is used from one thread at a time; it runs its own worker threads.
public final class InferenceSession {
    /// The model.
    public let model: LlamaModel
    /// Positions the KV cache can hold (committed tokens plus the nodes of one verification).
    public let capacity: Int
    /// The kernels in use.
    public let kernelPath: KernelPath
    /// Threads working on each forward pass (the calling thread included).
    public var threadCount: Int { pool.threadCount }
    /// The tokens whose KV entries are in the cache, in order.
    public private(set) var committedTokens: [UInt32] = []
    /// Number of committed tokens.
    public var committedLength: Int { committedTokens.count }

    /// The most KV slots this session has written (committed tokens plus tree nodes): the part
    /// of the cache that holds memory.
    public private(set) var kvHighWater = 0

    /// Changes whenever the engine's speed profile changes (kernels, cache layout), so that
    /// measurements kept on disk, such as verify-cost curves, are taken again.
    public static let engineRevision = 8

    /// Prompt tokens computed per forward pass by ``prefill(_:)``.
    public static let prefillChunk = 64

    let pool: WorkerPool
    private let config: LlamaConfig
    // F16 keys and values (rounded to nearest even, as llama.cpp's default cache stores them),
    // head-major: slot s of KV head h at (h * capacity + s) * headDimension, so attention
    // streams each head's rows contiguously.
    private let keyCache: [AlignedBuffer]
    private let valueCache: [AlignedBuffer]
    private var scratch: Scratch
    private let ropeInverseFrequencies: [Float]

    // The last forward pass: its tree, and which of its nodes have logits.
    private var lastTokens: [UInt32] = []
    private var lastParents: [Int32] = []
    private var logitRowOfNode: [Int] = []

    /// Creates a session over `model`.
    /// - Parameters:
    ///   - capacity: positions the KV cache holds (default: the model's context length). Memory
    ///     is reserved for all of them but only touched as the context grows.
    ///   - threads: threads per forward pass (default 2, the cores this machine has; lower it
    ///     when other work shares the cores).
    ///   - kernels: kernel path (default: `$RASD_KERNELS`, else the fastest this CPU runs).
    /// - Throws: ``EngineError/invalidArgument(_:)`` for a capacity or thread count out of range.
    public init(model: LlamaModel, capacity: Int? = nil, threads: Int = 2, kernels: KernelPath? = nil) throws {
        let config = model.config
        let capacity = capacity ?? config.contextLength
        guard capacity > 0, capacity <= config.contextLength else {
            throw EngineError.invalidArgument("session capacity \(capacity) must be in 1...\(config.contextLength) (the model's context length)")
        }
        guard (1...256).contains(threads) else {
            throw EngineError.invalidArgument("thread count \(threads) must be in 1...256")
        }
        self.model = model
        self.config = config
        self.capacity = capacity
        self.kernelPath = try kernels ?? KernelPath.fromEnvironment()
        pool = WorkerPool(threads: threads)
        let kvBytes = capacity * config.kvWidth * MemoryLayout<UInt16>.size
        keyCache = (0..<config.layerCount).map { _ in AlignedBuffer(byteCount: kvBytes) }
        valueCache = (0..<config.layerCount).map { _ in AlignedBuffer(byteCount: kvBytes) }
        scratch = Scratch(model: model, nodes: Self.prefillChunk, threads: threads, capacity: capacity, kernels: kernelPath)
        // llama.cpp's "normal" RoPE: pair (2i, 2i+1) turns by pos · base^(-2i/n), the power
        // taken by repeated multiplication in Float as llama.cpp does.
        let n = config.ropeDimensionCount
        let step = powf(config.ropeFrequencyBase, -2 / Float(n))
        var theta: Float = 1
        var inverse: [Float] = []
        for i in 0..<(n / 2) {
            inverse.append(theta / (model.ropeFrequencyFactors?[i] ?? 1))
            theta *= step
        }
        ropeInverseFrequencies = inverse
    }

    // MARK: Public API

    /// Computes the KV entries of `tokens` after the committed context and commits them.
    /// Long prompts run in chunks of ``prefillChunk`` tokens; the result does not depend on it.
    /// - Returns: the greedy next token after the prompt (the argmax of the last token's
    ///   logits, which ``withLastLogits(_:)`` gives in full).
    /// - Throws: ``EngineError`` for an empty prompt, bad token ids or a full context.
    @discardableResult
    public func prefill(_ tokens: [UInt32]) throws -> UInt32 {
        try prefill(tokens, hiddenStates: nil)
    }

    /// ``prefill(_:)`` that also hands the final hidden state of every prompt token to `body`
    /// (the draft head's input; ``hiddenState(node:normalized:)`` keeps only the last chunk's),
    /// one chunk at a time as it is computed: `body(first, states)` receives the states of
    /// tokens `first..<first + states.count / embeddingLength`, row-major, valid only during
    /// the call. With `normalized`, the output norm's result (the output head's input).
    @discardableResult
    public func prefill(
        _ tokens: [UInt32], normalized: Bool = true, hiddenStates body: (_ first: Int, _ states: UnsafeBufferPointer<Float>) throws -> Void
    ) throws -> UInt32 {
        try withoutActuallyEscaping(body) { try prefill(tokens, hiddenStates: (normalized, $0)) }
    }

    private func prefill(
        _ tokens: [UInt32], hiddenStates: (normalized: Bool, body: (Int, UnsafeBufferPointer<Float>) throws -> Void)?
    ) throws -> UInt32 {
        guard !tokens.isEmpty else { throw EngineError.invalidArgument("prefill needs at least one token") }
        try checkTokens(tokens)
        guard committedLength + tokens.count <= capacity else {
            throw EngineError.contextFull(needed: committedLength + tokens.count, capacity: capacity)
        }
        var next: UInt32 = 0
        var start = 0
        while start < tokens.count {
            let chunk = Array(tokens[start..<min(tokens.count, start + Self.prefillChunk)])
            let parents = (0..<chunk.count).map { Int32($0) - 1 }
            let isLast = start + chunk.count == tokens.count
            let argmax = try forward(tokens: chunk, parents: parents, logitNodes: isLast ? [chunk.count - 1] : [])
            if isLast { next = argmax[0] }
            if let hiddenStates {
                let states = (hiddenStates.normalized ? scratch.normalized : scratch.hidden).pointer(Float.self)
                try hiddenStates.body(start, UnsafeBufferPointer(start: states, count: chunk.count * config.embeddingLength))
            }
            try commit(path: Array(0..<chunk.count))
            start += chunk.count
        }
        return next
    }

    /// Computes and commits one token after the committed context.
    /// - Returns: the greedy next token (argmax of this token's logits; see ``lastLogits()``).
    @discardableResult
    public func decodeStep(_ token: UInt32) throws -> UInt32 {
        let argmax = try verify(tokens: [token], parents: [-1])
        try commit(path: [0])
        return argmax[0]
    }

    /// Runs a tree of candidate tokens through the model in one forward pass.
    ///
    /// - Parameters:
    ///   - tokens: the token of each node.
    ///   - parents: the parent of each node: -1 (after the committed context) or an earlier node.
    /// - Returns: the argmax token of each node's logits (the model's greedy choice after it).
    ///   Full logits: ``logits(node:)``; final hidden states: ``hiddenState(node:)``.
    /// - Throws: ``EngineError`` for a malformed tree, bad token ids or a full context.
    public func verify(tokens: [UInt32], parents: [Int32]) throws -> [UInt32] {
        try forward(tokens: tokens, parents: parents, logitNodes: Array(tokens.indices))
    }

    /// Keeps the KV entries of `path` (node indices of the last ``verify(tokens:parents:)``,
    /// root first, each the parent of the next; the first node's parent is -1) as the next
    /// committed tokens, and drops the other nodes.
    public func commit(path: [Int]) throws {
        guard !path.isEmpty else { return }
        guard !lastTokens.isEmpty else { throw EngineError.invalidPath("no verification to commit from (already committed?)") }
        for (j, node) in path.enumerated() {
            guard node >= 0, node < lastTokens.count else {
                throw EngineError.invalidPath("node \(node) is not in the last tree of \(lastTokens.count) nodes")
            }
            let expected = j == 0 ? -1 : path[j - 1]
            guard Int(lastParents[node]) == expected else {
                throw EngineError.invalidPath("node \(node)'s parent is \(lastParents[node]), not \(expected)")
            }
        }
        let base = committedLength
        let hd = config.headDimension
        for (j, node) in path.enumerated() where node != j {
            // node >= j along a chain (parents precede children), so moving in order never
            // overwrites a slot that is still to be read.
            for layer in 0..<config.layerCount {
                let k = keyCache[layer].pointer(UInt16.self), v = valueCache[layer].pointer(UInt16.self)
                for h in 0..<config.kvHeadCount {
                    let to = (h * capacity + base + j) * hd, from = (h * capacity + base + node) * hd
                    (k + to).update(from: k + from, count: hd)
                    (v + to).update(from: v + from, count: hd)
                }
            }
        }
        committedTokens += path.map { lastTokens[$0] }
        lastTokens = []
        lastParents = []
    }

    /// Drops committed tokens after the first `length` (KV rollback).
    public func truncate(to length: Int) throws {
        guard length >= 0, length <= committedLength else {
            throw EngineError.invalidArgument("cannot truncate a context of \(committedLength) tokens to \(length)")
        }
        committedTokens.removeLast(committedLength - length)
        lastTokens = []
        lastParents = []
        logitRowOfNode = []
    }

    /// Forgets the whole context.
    public func reset() {
        committedTokens = []
        lastTokens = []
        lastParents = []
        logitRowOfNode = []
    }

    /// Calls `body` with the logits of `node` of the last forward pass (valid only inside).
    /// After ``prefill(_:)`` or ``decodeStep(_:)`` use ``lastLogits()``.
    /// - Throws: ``EngineError/invalidArgument(_:)`` when that node has no logits.
    public func withLogits<R>(node: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard node >= 0, node < logitRowOfNode.count, logitRowOfNode[node] >= 0 else {
            throw EngineError.invalidArgument("node \(node) has no logits in the last forward pass")
        }
        let row = scratch.logits.pointer(Float.self) + logitRowOfNode[node] * scratch.vocabularyStride
        return try body(UnsafeBufferPointer(start: row, count: config.vocabularySize))
    }

    /// The logits of `node` of the last forward pass, copied.
    public func logits(node: Int) throws -> [Float] {
        try withLogits(node: node) { Array($0) }
    }

    /// Calls `body` with the logits of the last token computed by ``prefill(_:)`` or
    /// ``decodeStep(_:)`` (or of the last node of ``verify(tokens:parents:)``).
    public func withLastLogits<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard let node = logitRowOfNode.lastIndex(where: { $0 >= 0 }) else {
            throw EngineError.invalidArgument("no forward pass has produced logits yet")
        }
        return try withLogits(node: node, body)
    }

    /// The logits of the last token computed by ``prefill(_:)`` or ``decodeStep(_:)``, copied.
    public func lastLogits() throws -> [Float] {
        try withLastLogits { Array($0) }
    }

    /// The final hidden state of `node` of the last forward pass: the residual stream after
    /// the last block, the input of the output norm (`embeddingLength` floats). With
    /// `normalized`, the output norm's result instead (the input of the output head).
    /// Prefill keeps only its last chunk; verify keeps every node.
    public func hiddenState(node: Int, normalized: Bool = false) throws -> [Float] {
        guard node >= 0, node < scratch.lastNodeCount else {
            throw EngineError.invalidArgument("node \(node) is not in the last forward pass (\(scratch.lastNodeCount) nodes)")
        }
        let d = config.embeddingLength
        let base = (normalized ? scratch.normalized : scratch.hidden).pointer(Float.self) + node * d
        return Array(UnsafeBufferPointer(start: base, count: d))
    }

    // MARK: Forward pass

    private func checkTokens(_ tokens: [UInt32]) throws {
        for t in tokens where Int(t) >= config.vocabularySize {
            throw EngineError.tokenOutOfRange(token: t, vocabularySize: config.vocabularySize)
        }
    }

    /// One forward pass over the nodes; logits for `logitNodes` (in that order). Returns their argmax.
    private func forward(tokens: [UInt32], parents: [Int32], logitNodes: [Int]) throws -> [UInt32] {
        let n = tokens.count
        guard n > 0 else { throw EngineError.invalidTree("the tree is empty") }
        guard parents.count == n else {
            throw EngineError.invalidTree("\(n) tokens but \(parents.count) parents")
        }
        try checkTokens(tokens)
        var depth = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let p = Int(parents[i])
            guard p >= -1, p < i else { throw EngineError.invalidTree("parents[\(i)] is \(p)") }
            depth[i] = p < 0 ? 0 : depth[p] + 1
        }
        let base = committedLength
        guard base + n <= capacity else { throw EngineError.contextFull(needed: base + n, capacity: capacity) }
        kvHighWater = max(kvHighWater, base + n)

        // Ancestor chains, root first, as KV slots (node i's own KV lives in slot base + i).
        let (chains, chainStart) = ancestorChains(of: 0..<n, parents: parents, base: base)

        scratch.reserve(nodes: n, logitRows: logitNodes.count)
        let s = scratch
        let d = config.embeddingLength
        let path = kernelPath
        let x = s.x.pointer(Float.self), xn = s.xn.pointer(Float.self)

        for i in 0..<n { model.tokenEmbedding.dequantizeRow(Int(tokens[i]), into: x + i * d) }

        // RoPE angles per node (shared by all layers and heads).
        let pairs = config.ropeDimensionCount / 2
        let cosines = s.cosines.pointer(Float.self), sines = s.sines.pointer(Float.self)
        for i in 0..<n {
            let position = Float(base + depth[i]) * config.ropePositionScale
            for p in 0..<pairs {
                let theta = position * ropeInverseFrequencies[p]
                cosines[i * pairs + p] = cosf(theta)
                sines[i * pairs + p] = sinf(theta)
            }
        }

        let projection = s.projection.pointer(Float.self)
        var pending: Int? = nil  // stride of a block output in `projection` still to add to x
        for (index, layer) in model.layers.enumerated() {
            // Attention block.
            addNormQuantize(nodes: n, x: x, pending: pending, weight: layer.attentionNorm, into: xn, quantized: s.qa)
            let q = s.q.pointer(Float.self), k = s.k.pointer(Float.self), v = s.v.pointer(Float.self)
            let qStride = layer.query.paddedRows, kvStride = layer.key.paddedRows
            multiply([(layer.query, q, qStride), (layer.key, k, kvStride), (layer.value, v, kvStride)], input: xn, inputStride: d, quantized: s.qa, nodes: n)
            let keys = keyCache[index].pointer(UInt16.self), values = valueCache[index].pointer(UInt16.self)
            storeKV(q: q, qStride: qStride, k: k, v: v, kvStride: kvStride, nodes: n, keys: keys, values: values, base: base)
            attention(q: q, qStride: qStride, keys: keys, values: values, nodes: n, chains: chains, chainStart: chainStart)
            let attentionOut = s.attention.pointer(Float.self), attentionWidth = config.headCount * config.headDimension
            perNode(n) { s.qa.quantize(attentionOut, rows: $0, stride: attentionWidth) }
            multiply([(layer.attentionOutput, projection, layer.attentionOutput.paddedRows)], input: attentionOut, inputStride: attentionWidth, quantized: s.qa, nodes: n)

            // Feed-forward block.
            addNormQuantize(nodes: n, x: x, pending: layer.attentionOutput.paddedRows, weight: layer.ffnNorm, into: xn, quantized: s.qa)
            let gate = s.gate.pointer(Float.self), up = s.up.pointer(Float.self)
            let ffStride = layer.gate.paddedRows, ff = config.feedForwardLength
            pool.runShares(layer.gate.groups) { groups in
                layer.gate.multiply(x: xn, xStride: d, quantized: s.qa, tokens: n, output: gate, outputStride: ffStride, groups: groups, path: path)
                layer.up.multiply(x: xn, xStride: d, quantized: s.qa, tokens: n, output: up, outputStride: ffStride, groups: groups, path: path)
                // SwiGLU on the rows this chunk just computed: silu(gate) * up, into `gate`.
                let rows = (groups.lowerBound * 8)..<min(ff, groups.upperBound * 8)
                for t in 0..<n {
                    PortableMath.swiglu(gate: gate + t * ffStride, up: up + t * ffStride, rows: rows, path: path)
                }
            }
            perNode(n) { s.qf.quantize(gate, rows: $0, stride: ffStride) }
            multiply([(layer.down, projection, layer.down.paddedRows)], input: gate, inputStride: ffStride, quantized: s.qf, nodes: n)
            pending = layer.down.paddedRows
        }

        // Final norm, hidden states and the output head for the requested nodes.
        let hidden = s.hidden.pointer(Float.self), normalized = s.normalized.pointer(Float.self)
        addNormQuantize(nodes: n, x: x, pending: pending, weight: model.outputNorm, into: normalized, quantized: nil)
        hidden.update(from: x, count: n * d)
        s.lastNodeCount = n
        let rows = logitNodes.count
        var argmax = [UInt32](repeating: 0, count: rows)
        if rows > 0 {
            let selected = s.xn.pointer(Float.self)
            for (r, node) in logitNodes.enumerated() { (selected + r * d).update(from: normalized + node * d, count: d) }
            s.qa.quantize(selected, rows: rows, stride: d)
            let logits = s.logits.pointer(Float.self), stride = s.vocabularyStride
            let head = model.output, vocabulary = config.vocabularySize
            // Each chunk also finds the argmax of its own rows; the smallest index wins ties.
            let chunks = pool.chunks(for: head.groups)
            var best = [(value: Float, index: Int)](repeating: (-.infinity, 0), count: chunks * rows)
            best.withUnsafeMutableBufferPointer { best in
                pool.run(chunks: chunks) { c in
                    let groups = share(head.groups, worker: c, of: chunks)
                    head.multiply(
                        x: selected, xStride: d, quantized: s.qa, tokens: rows, output: logits, outputStride: stride,
                        groups: groups, path: path)
                    for r in 0..<rows {
                        best[c * rows + r] = PortableMath.argmax(logits + r * stride, (groups.lowerBound * 8)..<min(vocabulary, groups.upperBound * 8))
                    }
                }
            }
            for r in 0..<rows {
                var top = best[r]
                for c in 1..<chunks where best[c * rows + r].value > top.value { top = best[c * rows + r] }
                argmax[r] = UInt32(top.index)
            }
        }
        logitRowOfNode = [Int](repeating: -1, count: n)
        for (r, node) in logitNodes.enumerated() { logitRowOfNode[node] = r }
        lastTokens = tokens
        lastParents = parents
        return argmax
    }

    /// Per-node work (norms, quantization, RoPE): parallel only when the batch is large enough
    /// to pay for the hand-off.
    private func perNode(_ n: Int, _ body: (Range<Int>) -> Void) {
        if n < 4 || threadCount == 1 { body(0..<n) } else { pool.runShares(n, body) }
    }

    /// `x += projection` (a block's output, row stride `pending`) when given, then
    /// `out = rmsNorm(x) * weight`, then the 8-bit form of `out` when `quantized` is given.
    private func addNormQuantize(
        nodes n: Int, x: UnsafeMutablePointer<Float>, pending: Int?, weight: [Float], into out: UnsafeMutablePointer<Float>,
        quantized: QuantizedActivations?
    ) {
        let d = config.embeddingLength
        let projection = scratch.projection.pointer(Float.self)
        perNode(n) { rows in
            if let stride = pending {
                for t in rows {
                    let xt = x + t * d, pt = projection + t * stride
                    for i in 0..<d { xt[i] = xt[i] + pt[i] }
                }
            }
            PortableMath.rmsNorm(x, weight: weight, epsilon: config.normEpsilon, width: d, rows: rows, into: out)
            quantized?.quantize(out, rows: rows, stride: d)
        }
    }

    /// Several matrix products of one input, their row groups split across the pool as one list.
    private func multiply(
        _ products: [(WeightMatrix, UnsafeMutablePointer<Float>, Int)], input: UnsafeMutablePointer<Float>,
        inputStride: Int, quantized: QuantizedActivations, nodes n: Int
    ) {
        pool.multiply(products, input: input, inputStride: inputStride, quantized: quantized, tokens: n, path: kernelPath)
    }

    /// Rotates queries and keys (RoPE) and writes each node's key and value into its KV slot.
    private func storeKV(
        q: UnsafeMutablePointer<Float>, qStride: Int, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
        kvStride: Int, nodes n: Int, keys: UnsafeMutablePointer<UInt16>, values: UnsafeMutablePointer<UInt16>, base: Int
    ) {
        let portable = kernelPath == .portable
        let hd = config.headDimension, pairs = config.ropeDimensionCount / 2
        let cosines = scratch.cosines.pointer(Float.self), sines = scratch.sines.pointer(Float.self)
        @inline(__always) func rotate(_ head: UnsafeMutablePointer<Float>, _ node: Int) {
            for p in 0..<pairs {
                let c = cosines[node * pairs + p], s = sines[node * pairs + p]
                let a = head[2 * p], b = head[2 * p + 1]
                head[2 * p] = a * c - b * s
                head[2 * p + 1] = a * s + b * c
            }
        }
        let heads = config.headCount, kvHeads = config.kvHeadCount
        perNode(n) { nodes in
            for i in nodes {
                for h in 0..<heads { rotate(q + i * qStride + h * hd, i) }
                for h in 0..<kvHeads { rotate(k + i * kvStride + h * hd, i) }
                for h in 0..<kvHeads {
                    let slot = (h * capacity + base + i) * hd
                    PortableMath.storeHalves(k + i * kvStride + h * hd, into: keys + slot, count: hd, portable: portable)
                    PortableMath.storeHalves(v + i * kvStride + h * hd, into: values + slot, count: hd, portable: portable)
                }
            }
        }
    }

    /// Causal attention of every node over the committed context and its ancestors, in
    /// position order. Work items are (KV head, block of nodes; see ``attentionNodesPerItem(_:)``):
    /// the query heads of the group and the nodes of the block read the committed keys and
    /// values of their KV head once between them. Writes `scratch.attention`.
    private func attention(
        q: UnsafeMutablePointer<Float>, qStride: Int, keys: UnsafeMutablePointer<UInt16>,
        values: UnsafeMutablePointer<UInt16>, nodes n: Int, chains: [Int32], chainStart: [Int32]
    ) {
        let hd = config.headDimension, heads = config.headCount
        let group = config.headCount / config.kvHeadCount, kvHeads = config.kvHeadCount
        let committed = committedLength
        let scale = 1 / sqrtf(Float(hd))
        let out = scratch.attention.pointer(Float.self)
        let block = attentionNodesPerItem(n)
        let blocks = (n + block - 1) / block
        let chunks = min(kvHeads * blocks, scratch.attentionChunks)
        let portable = kernelPath == .portable
        chains.withUnsafeBufferPointer { chains in
            chainStart.withUnsafeBufferPointer { chainStart in
                guard let chainBase = chains.baseAddress, let startBase = chainStart.baseAddress else { return }
                pool.run(chunks: chunks) { c in
                    let scores = scratch.scores(chunk: c)
                    for item in share(kvHeads * blocks, worker: c, of: chunks) {
                        let kv = item % kvHeads, first = (item / kvHeads) * block
                        let count = min(block, n - first), h = kv * group
                        let kvOffset = kv * capacity * hd
                        let qh = UnsafePointer(q + first * qStride + h * hd)
                        let oh = out + first * heads * hd + h * hd
                        if portable {
                            PortableMath.attention(
                                q: qh, qStride: qStride, group: group, queries: count * group, keys: keys + kvOffset,
                                values: values + kvOffset, stride: hd, committed: committed, chains: chainBase,
                                chainStart: startBase + first, hd: hd, scale: scale, scores: scores,
                                scoresStride: scratch.scoresStride, out: oh, outStride: heads * hd)
                        } else {
                            let kernel = kernelPath == .avx512vnni ? rasd_attention_f16_avx512 : rasd_attention_f16_avx2
                            kernel(
                                qh, qStride, group, count * group, keys + kvOffset, values + kvOffset, hd, committed,
                                chainBase, startBase + first, hd, scale, scores, scratch.scoresStride, oh, heads * hd)
                        }
                    }
                }
            }
        }
    }

    /// Nodes whose queries share one pass over a KV head's keys and values in ``attention``:
    /// every query head of the group, so SmolLM2's 3 query heads per KV head read and widen each
    /// key once between them. With 2 nodes (6 queries) a tree still has enough work items for
    /// both threads. Verify after 512 tokens (scratch probe, configurations interleaved, medians
    /// of 100, 2026-11-28): one node 3.75 -> 3.53 ms against one query head per item (6-10% at
    /// contexts of 256 to 1,024), 16 nodes 16.5 -> 15.8 ms, 2 to 8 nodes within noise.
    static let attentionNodeBlock = 2

    /// Nodes per attention work item for `n` nodes: ``attentionNodeBlock``, or 1 where blocks
    /// would leave fewer than two items per thread (SmolLM2's 3 KV heads and 2 nodes would be 3
    /// items for 2 threads, one thread idle a third of the time). Verify of 2 nodes, scratch
    /// probe, blocks of 1 against 2 in one process: 4.01 / 4.16 ms after 512 tokens, 5.09 / 5.41
    /// after 1,024, 3.52 / 3.61 after 256 (medians of 60-100); the two builds alternated three
    /// times, after 512 tokens: 4.49, 4.42, 4.37 ms against 4.64, 4.56, 4.36. From 3 nodes on,
    /// blocks of 2 were as fast or faster.
    func attentionNodesPerItem(_ n: Int) -> Int {
        let blocks = (n + Self.attentionNodeBlock - 1) / Self.attentionNodeBlock
        return config.kvHeadCount * blocks >= 2 * threadCount ? Self.attentionNodeBlock : 1
    }
}

/// The ancestor chain of each node in `nodes`, root first, as KV slots: node `j` lives in slot
/// `base + j`, `parents[j]` is its parent (-1: it hangs from the committed context). Flattened:
/// the chain of the `i`-th node of `nodes` is `chains[chainStart[i] ..< chainStart[i + 1]]`.
/// The target's verification and the draft head's tree attention both read chains this way.
func ancestorChains(of nodes: Range<Int>, parents: [Int32], base: Int) -> (chains: [Int32], chainStart: [Int32]) {
    var chains: [Int32] = [], chainStart: [Int32] = [0]
    chainStart.reserveCapacity(nodes.count + 1)
    for node in nodes {
        let first = chains.count
        var j = node
        while j >= 0 {
            chains.append(Int32(base + j))
            j = Int(parents[j])
        }
        chains[first...].reverse()
        chainStart.append(Int32(chains.count))
    }
    return (chains, chainStart)
}

/// Buffers of one session, sized for a batch of nodes and grown on demand.
private final class Scratch {
    let config: LlamaConfig
    let vocabularyStride: Int
    let threads: Int
    let capacity: Int
    private(set) var nodes = 0
    private(set) var logitRows = 0
    var lastNodeCount = 0

    var x = AlignedBuffer(byteCount: 0), xn = AlignedBuffer(byteCount: 0)
    var q = AlignedBuffer(byteCount: 0), k = AlignedBuffer(byteCount: 0), v = AlignedBuffer(byteCount: 0)
    var attention = AlignedBuffer(byteCount: 0), projection = AlignedBuffer(byteCount: 0)
    var gate = AlignedBuffer(byteCount: 0), up = AlignedBuffer(byteCount: 0)
    var hidden = AlignedBuffer(byteCount: 0), normalized = AlignedBuffer(byteCount: 0)
    var cosines = AlignedBuffer(byteCount: 0), sines = AlignedBuffer(byteCount: 0)
    var logits = AlignedBuffer(byteCount: 0)
    private let scoreBuffer: AlignedBuffer
    let scoresStride: Int
    /// Chunks an attention section is cut into (each with its own score rows).
    let attentionChunks: Int

    func scores(chunk: Int) -> UnsafeMutablePointer<Float> {
        scoreBuffer.pointer(Float.self) + chunk * Self.attentionRowsPerChunk(config) * scoresStride
    }

    /// Score rows an attention chunk needs: one per query of a block of nodes.
    static func attentionRowsPerChunk(_ config: LlamaConfig) -> Int {
        InferenceSession.attentionNodeBlock * config.headCount / max(1, config.kvHeadCount)
    }

    let qa: QuantizedActivations
    let qf: QuantizedActivations
    private let widest: Int

    init(model: LlamaModel, nodes: Int, threads: Int, capacity: Int, kernels: KernelPath) {
        config = model.config
        vocabularyStride = model.output.paddedRows
        self.threads = threads
        self.capacity = capacity
        let layer = model.layers[0]
        widest = [layer.query.paddedRows, layer.key.paddedRows, layer.attentionOutput.paddedRows, layer.down.paddedRows,
                  config.embeddingLength, config.headCount * config.headDimension].max() ?? config.embeddingLength
        scoresStride = (capacity + 15) / 16 * 16
        // Per attention chunk: a score row for each query of a block of nodes.
        attentionChunks = threads == 1 ? 1 : 4 * threads
        scoreBuffer = AlignedBuffer(byteCount: attentionChunks * Self.attentionRowsPerChunk(config) * scoresStride * 4)
        qa = QuantizedActivations(
            columns: max(config.embeddingLength, config.headCount * config.headDimension), capacity: nodes, kernels: kernels)
        qf = QuantizedActivations(columns: model.layers[0].gate.paddedRows, capacity: nodes, kernels: kernels)
        reserve(nodes: nodes, logitRows: 1)
    }

    func reserve(nodes n: Int, logitRows r: Int) {
        if n > nodes {
            nodes = max(n, nodes * 2)
            let f = nodes * 4
            let ffStride = max(config.feedForwardLength + 7, 8) / 8 * 8
            x = AlignedBuffer(byteCount: f * config.embeddingLength)
            xn = AlignedBuffer(byteCount: f * max(widest, config.embeddingLength))
            q = AlignedBuffer(byteCount: f * widest)
            k = AlignedBuffer(byteCount: f * widest)
            v = AlignedBuffer(byteCount: f * widest)
            attention = AlignedBuffer(byteCount: f * widest)
            projection = AlignedBuffer(byteCount: f * widest)
            gate = AlignedBuffer(byteCount: f * ffStride)
            up = AlignedBuffer(byteCount: f * ffStride)
            hidden = AlignedBuffer(byteCount: f * config.embeddingLength)
            normalized = AlignedBuffer(byteCount: f * config.embeddingLength)
            cosines = AlignedBuffer(byteCount: f * config.ropeDimensionCount / 2)
            sines = AlignedBuffer(byteCount: f * config.ropeDimensionCount / 2)
            qa.reserve(rows: nodes)
            qf.reserve(rows: nodes)
        }
        if r > logitRows {
            logitRows = max(r, logitRows * 2)
            logits = AlignedBuffer(byteCount: logitRows * vocabularyStride * 4)
        }
    }
}

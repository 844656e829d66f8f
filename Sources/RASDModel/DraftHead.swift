import RASDGGUF

/// An EAGLE-style draft head: one transformer layer over the target's own features that
/// predicts the target's next feature, and so its next token, at a few percent of a target step.
///
/// For a context position it reads the target's final hidden state `f` (normalized: the output
/// head's input) and the embedding of the token after it (the target's own table), and predicts
/// the feature one token later:
///
/// ```
/// h  = fc([embed(token); f]) + bias          2d -> d
/// h += attention(rmsnorm(h))                 causal over the head's own KV cache, RoPE
/// h += swiglu(rmsnorm(h))
/// f' = rmsnorm(h) * outputNorm               the predicted feature
/// logits = W_out[vocabulary] · f'            the target's own output rows, draft vocabulary only
/// ```
///
/// The file is a GGUF (architecture `rasd-draft-head`, written by
/// `scripts/draft-head/export.py`) with the layer's matrices in Q8_0; the output rows are not in
/// it but gathered from the target at load time, so the head is a few MB. `scripts/draft-head/head.py`
/// is the same model in JAX (training, golden outputs).
public final class DraftHead: Sendable {
    /// Shape and hyper-parameters.
    public struct Config: Sendable, Equatable {
        public var embeddingLength: Int
        public var headCount: Int
        public var kvHeadCount: Int
        public var headDimension: Int
        public var feedForwardLength: Int
        public var ropeFrequencyBase: Float
        public var normEpsilon: Float
        public var kvWidth: Int { kvHeadCount * headDimension }
    }

    public let config: Config
    /// The file the head came from.
    public let path: String
    /// The target it was trained for (its file name, as recorded at export).
    public let targetName: String
    /// Draft vocabulary: the target token id of each output row.
    public let vocabulary: [UInt32]
    /// The target model whose embeddings and output rows the head reads.
    public let target: LlamaModel

    let fc: WeightMatrix
    let fcBias: [Float]
    let attentionNorm: [Float]
    let query: WeightMatrix, key: WeightMatrix, value: WeightMatrix, attentionOutput: WeightMatrix
    let ffnNorm: [Float]
    let gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    let outputNorm: [Float]
    /// The target's output rows of the draft vocabulary.
    let output: WeightMatrix

    static let architecture = "rasd-draft-head"

    /// Loads the head at `path` for `target`.
    /// - Throws: ``GGUFError`` for unreadable or misshapen files; ``EngineError/invalidArgument(_:)``
    ///   when the head was trained for another model (its shape or embedding fingerprint differs).
    public init(path: String, target: LlamaModel) throws {
        let file = try GGUFFile(path: path)
        let arch = (try? file.string("general.architecture")) ?? "none"
        guard arch == Self.architecture else {
            throw GGUFError(.unsupportedArchitecture, path: path, "architecture \"\(arch)\" is not a rasd draft head (\(Self.architecture)); make one with `rasd-index draft-head train`")
        }
        let p = Self.architecture + "."
        let d = try file.integer(p + "embedding_length")
        let heads = try file.integer(p + "attention.head_count")
        config = Config(
            embeddingLength: d, headCount: heads, kvHeadCount: try file.integer(p + "attention.head_count_kv"),
            headDimension: d / max(1, heads), feedForwardLength: try file.integer(p + "feed_forward_length"),
            ropeFrequencyBase: Float(try file.double(p + "rope.freq_base")),
            normEpsilon: Float(try file.double(p + "attention.layer_norm_rms_epsilon")))
        self.path = path
        self.target = target
        targetName = (try? file.string(p + "target.name")) ?? "unknown"
        let t = target.config
        guard d == t.embeddingLength, config.headDimension * heads == d, config.headDimension % 2 == 0,
              heads % max(1, config.kvHeadCount) == 0
        else {
            throw EngineError.invalidArgument(
                "draft head \(path) has width \(d) and \(heads) heads; the target \(target.path) has width \(t.embeddingLength): train a head for this model")
        }
        // The head reads the target's embeddings: check they are the ones it was trained on.
        let fingerprintRows = try file.integerArray(p + "target.fingerprint_rows")
        let fingerprint = (file.metadata[p + "target.fingerprint"]?.array ?? []).compactMap(\.double)
        guard fingerprint.count == fingerprintRows.count, !fingerprint.isEmpty else {
            throw GGUFError(.missingTensor, path: path, "the head has no target fingerprint; export it again")
        }
        for (row, expected) in zip(fingerprintRows, fingerprint) {
            guard row >= 0, row < t.vocabularySize else {
                throw EngineError.invalidArgument("draft head \(path) was trained for a larger vocabulary than \(target.path)'s")
            }
            let sum = target.tokenEmbedding.row(row).reduce(0.0) { $0 + Double($1) }
            guard abs(sum - expected) <= 1e-3 * max(1, abs(expected)) else {
                throw EngineError.invalidArgument(
                    "draft head \(path) was trained for \(targetName), whose embeddings differ from \(target.path)'s: train a head for this model")
            }
        }
        let ids = try file.integerArray(p + "vocabulary")
        guard !ids.isEmpty, ids.allSatisfy({ $0 >= 0 && $0 < t.vocabularySize }) else {
            throw GGUFError(.missingTensor, path: path, "the draft vocabulary is empty or names tokens outside the target's \(t.vocabularySize)")
        }
        vocabulary = ids.map { UInt32($0) }

        let f = config.feedForwardLength, attentionWidth = heads * config.headDimension
        fc = try WeightMatrix(file: file, name: "fc.weight", columns: 2 * d, rows: d)
        fcBias = try Self.vector(file, "fc.bias", count: d)
        attentionNorm = try Self.vector(file, "attn_norm.weight", count: d)
        query = try WeightMatrix(file: file, name: "attn_q.weight", columns: d, rows: attentionWidth)
        key = try WeightMatrix(file: file, name: "attn_k.weight", columns: d, rows: config.kvWidth)
        value = try WeightMatrix(file: file, name: "attn_v.weight", columns: d, rows: config.kvWidth)
        attentionOutput = try WeightMatrix(file: file, name: "attn_output.weight", columns: attentionWidth, rows: d)
        ffnNorm = try Self.vector(file, "ffn_norm.weight", count: d)
        gate = try WeightMatrix(file: file, name: "ffn_gate.weight", columns: d, rows: f)
        up = try WeightMatrix(file: file, name: "ffn_up.weight", columns: d, rows: f)
        down = try WeightMatrix(file: file, name: "ffn_down.weight", columns: f, rows: d)
        outputNorm = try Self.vector(file, "output_norm.weight", count: d)
        output = WeightMatrix(gathering: ids, of: target.output)
    }

    /// Bytes of the head's own weights in memory (the gathered output rows included).
    public var weightBytes: Int {
        [fc, query, key, value, attentionOutput, gate, up, down, output].reduce(0) { $0 + $1.byteCount }
    }

    private static func vector(_ file: GGUFFile, _ name: String, count: Int) throws -> [Float] {
        guard let info = file.tensor(named: name), info.type == .f32, info.elementCount == count else {
            throw GGUFError(.missingTensor, path: file.path, "tensor \(name) is missing or not \(count) F32 values")
        }
        let data = try file.tensorData(info)
        return (0..<count).map { data.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
    }
}

extension WeightMatrix {
    /// The rows `rows` of `source`, in that order, in the same format: a smaller output head
    /// over a subset of the vocabulary, bit-identical row by row.
    convenience init(gathering rows: [Int], of source: WeightMatrix) {
        self.init(format: source.format, rows: rows.count, columns: source.columns)
        for (r, s) in rows.enumerated() { copyRow(r, from: source, row: s) }
    }
}

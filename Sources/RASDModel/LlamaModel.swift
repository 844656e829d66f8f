import CRASDKernels
import RASDGGUF

/// A Llama-family model loaded from GGUF, with its weights repacked for the kernels.
///
/// Loading maps the file, repacks every matrix into the kernels' layout (the only copy kept)
/// and releases the mapping, so resident memory is about the size of the file. The model is
/// immutable and can be shared by several ``InferenceSession``s.
public final class LlamaModel: Sendable {
    /// Shape and hyper-parameters.
    public let config: LlamaConfig
    /// The file the model came from.
    public let path: String
    /// Size of the GGUF file in bytes.
    public let fileSize: Int
    /// Token embedding table (`vocabularySize` rows × `embeddingLength`).
    public let tokenEmbedding: WeightMatrix
    /// Output head (`vocabularySize` rows); the embedding table itself when the model ties them.
    public let output: WeightMatrix
    /// Whether the output head is the token embedding table.
    public let tiedEmbeddings: Bool
    /// The end-of-sequence token (`tokenizer.ggml.eos_token_id`), when the file names one.
    public let endOfSequenceToken: UInt32?
    /// Final RMSNorm weight.
    public let outputNorm: [Float]
    /// RoPE frequency divisors per rotated pair (`rope_freqs.weight`, Llama 3.1), else nil.
    let ropeFrequencyFactors: [Float]?
    /// The transformer blocks, in order.
    public let layers: [Layer]

    /// The weights of one transformer block.
    public struct Layer: Sendable {
        /// RMSNorm weight before attention.
        public let attentionNorm: [Float]
        /// Query projection (`headCount × headDimension` outputs).
        public let query: WeightMatrix
        /// Key projection (`kvWidth` outputs).
        public let key: WeightMatrix
        /// Value projection (`kvWidth` outputs).
        public let value: WeightMatrix
        /// Attention output projection.
        public let attentionOutput: WeightMatrix
        /// RMSNorm weight before the feed-forward block.
        public let ffnNorm: [Float]
        /// SwiGLU gate projection.
        public let gate: WeightMatrix
        /// SwiGLU up projection.
        public let up: WeightMatrix
        /// Feed-forward down projection.
        public let down: WeightMatrix

        /// The block's matrices, in the order a forward pass uses them.
        public var matrices: [WeightMatrix] { [query, key, value, attentionOutput, gate, up, down] }
    }

    /// Loads the GGUF model at `path`.
    /// - Throws: ``GGUFError`` for unreadable or truncated files, unsupported architectures or
    ///   tensor types, and missing or misshapen tensors.
    public convenience init(path: String) throws {
        try self.init(file: GGUFFile(path: path))
        // The file's metadata (a vocabulary and merges of ~100k strings) was parsed into many
        // small allocations that are all freed now; hand those pages back to the OS.
        rasd_release_free_heap()
    }

    /// Loads a model from an opened GGUF file (the mapping is only read during this call).
    public init(file: GGUFFile) throws {
        let config = try LlamaConfig(file: file)
        self.config = config
        path = file.path
        fileSize = file.file.bytes.count
        let d = config.embeddingLength
        // Repacked matrices are as large as their GGUF tensors (plus padding to 8 rows), so the
        // file's size bounds them; a matrix that does not fit goes to the heap.
        let arena = WeightArena(capacity: fileSize + (1 << 20))
        func matrix(_ name: String, columns: Int, rows: Int) throws -> WeightMatrix {
            try WeightMatrix(file: file, name: name, columns: columns, rows: rows, arena: arena)
        }
        tokenEmbedding = try matrix("token_embd.weight", columns: d, rows: config.vocabularySize)
        if file.tensor(named: "output.weight") != nil {
            output = try matrix("output.weight", columns: d, rows: config.vocabularySize)
            tiedEmbeddings = false
        } else {
            output = tokenEmbedding
            tiedEmbeddings = true
        }
        outputNorm = try Self.vector(file, "output_norm.weight", count: d)
        endOfSequenceToken = file.metadata["tokenizer.ggml.eos_token_id"]?.integer.map { UInt32(truncatingIfNeeded: $0) }
        if file.tensor(named: "rope_freqs.weight") != nil {
            ropeFrequencyFactors = try Self.vector(file, "rope_freqs.weight", count: config.ropeDimensionCount / 2)
        } else {
            ropeFrequencyFactors = nil
        }
        var layers: [Layer] = []
        for i in 0..<config.layerCount {
            let p = "blk.\(i)."
            layers.append(
                Layer(
                    attentionNorm: try Self.vector(file, p + "attn_norm.weight", count: d),
                    query: try matrix(p + "attn_q.weight", columns: d, rows: config.headCount * config.headDimension),
                    key: try matrix(p + "attn_k.weight", columns: d, rows: config.kvWidth),
                    value: try matrix(p + "attn_v.weight", columns: d, rows: config.kvWidth),
                    attentionOutput: try matrix(p + "attn_output.weight", columns: config.headCount * config.headDimension, rows: d),
                    ffnNorm: try Self.vector(file, p + "ffn_norm.weight", count: d),
                    gate: try matrix(p + "ffn_gate.weight", columns: d, rows: config.feedForwardLength),
                    up: try matrix(p + "ffn_up.weight", columns: d, rows: config.feedForwardLength),
                    down: try matrix(p + "ffn_down.weight", columns: config.feedForwardLength, rows: d)))
        }
        self.layers = layers
    }

    /// Bytes of the repacked weights held in memory.
    public var weightBytes: Int {
        var total = tokenEmbedding.byteCount + (tiedEmbeddings ? 0 : output.byteCount)
        for l in layers {
            total += l.matrices.reduce(0) { $0 + $1.byteCount }
        }
        return total
    }

    /// The embedding of `token` (`embeddingLength` floats), as the forward pass uses it.
    /// - Throws: ``EngineError/tokenOutOfRange(token:vocabularySize:)``.
    public func embedding(of token: UInt32) throws -> [Float] {
        guard Int(token) < config.vocabularySize else {
            throw EngineError.tokenOutOfRange(token: token, vocabularySize: config.vocabularySize)
        }
        return [Float](unsafeUninitializedCapacity: config.embeddingLength) { buffer, count in
            if let base = buffer.baseAddress { tokenEmbedding.dequantizeRow(Int(token), into: base) }
            count = config.embeddingLength
        }
    }

    /// A one-dimensional F32 (or F16) tensor of `count` values.
    private static func vector(_ file: GGUFFile, _ name: String, count: Int) throws -> [Float] {
        guard let info = file.tensor(named: name) else {
            throw GGUFError(.missingTensor, path: file.path, "tensor \(name) is missing")
        }
        guard info.elementCount == count else {
            throw GGUFError(.missingTensor, path: file.path, "tensor \(name) has \(info.elementCount) values, expected \(count)")
        }
        let data = try file.tensorData(info)
        switch info.type {
        case .f32: return (0..<count).map { data.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        case .f16: return (0..<count).map { Float(Float16(bitPattern: data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
        default:
            throw GGUFError(.unsupportedTensorType, path: file.path, "tensor \(name) has type \(info.type); norms must be F32 or F16")
        }
    }
}

import RASDGGUF

/// The shape and hyper-parameters of a Llama-family model, read from GGUF metadata.
public struct LlamaConfig: Sendable, Equatable {
    /// `general.architecture` of the file (`llama`, or a family member with the same graph).
    public var architecture: String
    /// Number of transformer blocks.
    public var layerCount: Int
    /// Width of the residual stream (`embedding_length`).
    public var embeddingLength: Int
    /// Hidden width of the SwiGLU feed-forward block.
    public var feedForwardLength: Int
    /// Number of query heads.
    public var headCount: Int
    /// Number of key/value heads (grouped-query attention when fewer than `headCount`).
    public var kvHeadCount: Int
    /// Width of one attention head.
    public var headDimension: Int
    /// Number of leading dimensions of each head that RoPE rotates.
    public var ropeDimensionCount: Int
    /// RoPE frequency base.
    public var ropeFrequencyBase: Float
    /// Multiplier applied to positions before RoPE (1 / linear scaling factor).
    public var ropePositionScale: Float
    /// RMSNorm epsilon.
    public var normEpsilon: Float
    /// Context length the model was trained for.
    public var contextLength: Int
    /// Vocabulary size (rows of the token embedding table).
    public var vocabularySize: Int

    /// Architectures whose GGUF graph is the Llama graph (pre-norm, RoPE in llama.cpp's "normal"
    /// adjacent-pair mode, GQA, SwiGLU) under their own metadata prefix.
    public static let supportedArchitectures: Set<String> = ["llama"]

    /// Creates a configuration from its parts.
    public init(
        architecture: String = "llama", layerCount: Int, embeddingLength: Int, feedForwardLength: Int,
        headCount: Int, kvHeadCount: Int, headDimension: Int, ropeDimensionCount: Int,
        ropeFrequencyBase: Float, ropePositionScale: Float = 1, normEpsilon: Float, contextLength: Int,
        vocabularySize: Int
    ) {
        self.architecture = architecture
        self.layerCount = layerCount
        self.embeddingLength = embeddingLength
        self.feedForwardLength = feedForwardLength
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDimension = headDimension
        self.ropeDimensionCount = ropeDimensionCount
        self.ropeFrequencyBase = ropeFrequencyBase
        self.ropePositionScale = ropePositionScale
        self.normEpsilon = normEpsilon
        self.contextLength = contextLength
        self.vocabularySize = vocabularySize
    }

    /// Reads the configuration of `file`.
    /// - Throws: ``GGUFError`` `.unsupportedArchitecture` for a non-Llama graph or RoPE scaling
    ///   this engine does not implement, `.missingMetadata` for absent keys, `.malformed` for
    ///   inconsistent shapes.
    public init(file: GGUFFile) throws {
        let arch = try file.string("general.architecture")
        guard Self.supportedArchitectures.contains(arch) else {
            throw GGUFError(
                .unsupportedArchitecture, path: file.path,
                "architecture \"\(arch)\" is not supported (supported: \(Self.supportedArchitectures.sorted().joined(separator: ", ")))")
        }
        let p = arch + "."
        let embedding = try file.integer(p + "embedding_length")
        let heads = try file.integer(p + "attention.head_count")
        let kvHeads = (try? file.integer(p + "attention.head_count_kv")) ?? heads
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0, embedding % heads == 0 else {
            throw GGUFError(
                .malformed, path: file.path,
                "\(heads) query heads, \(kvHeads) key/value heads and width \(embedding) do not form grouped-query attention")
        }
        let headDim = (try? file.integer(p + "attention.key_length")) ?? embedding / heads
        guard headDim * heads == embedding, headDim % 2 == 0 else {
            throw GGUFError(.unsupportedArchitecture, path: file.path, "head width \(headDim) × \(heads) heads differs from width \(embedding)")
        }
        var positionScale: Float = 1
        if let type = file.metadata[p + "rope.scaling.type"]?.string, type != "none" {
            guard type == "linear" else {
                throw GGUFError(.unsupportedArchitecture, path: file.path, "RoPE scaling \"\(type)\" is not supported (none and linear are)")
            }
            let factor = try file.double(p + "rope.scaling.factor")
            guard factor > 0 else {
                throw GGUFError(.malformed, path: file.path, "\(p)rope.scaling.factor is \(factor)")
            }
            positionScale = Float(1 / factor)
        }
        let vocabulary: Int
        if let v = file.metadata[p + "vocab_size"]?.integer {
            vocabulary = v
        } else if let tokens = file.metadata["tokenizer.ggml.tokens"]?.array {
            vocabulary = tokens.count
        } else {
            guard let embd = file.tensor(named: "token_embd.weight"), embd.dimensions.count == 2 else {
                throw GGUFError(.missingMetadata, path: file.path, "cannot tell the vocabulary size (no \(p)vocab_size)")
            }
            vocabulary = embd.dimensions[1]
        }
        let ropeDims = (try? file.integer(p + "rope.dimension_count")) ?? headDim
        guard ropeDims > 0, ropeDims <= headDim, ropeDims % 2 == 0 else {
            throw GGUFError(.malformed, path: file.path, "rope.dimension_count \(ropeDims) does not fit head width \(headDim)")
        }
        self.init(
            architecture: arch,
            layerCount: try file.integer(p + "block_count"),
            embeddingLength: embedding,
            feedForwardLength: try file.integer(p + "feed_forward_length"),
            headCount: heads,
            kvHeadCount: kvHeads,
            headDimension: headDim,
            ropeDimensionCount: ropeDims,
            ropeFrequencyBase: Float((try? file.double(p + "rope.freq_base")) ?? 10000),
            ropePositionScale: positionScale,
            normEpsilon: Float(try file.double(p + "attention.layer_norm_rms_epsilon")),
            contextLength: try file.integer(p + "context_length"),
            vocabularySize: vocabulary)
        guard layerCount > 0, feedForwardLength > 0, contextLength > 0, vocabularySize > 0 else {
            throw GGUFError(.malformed, path: file.path, "model dimensions must be positive: \(self)")
        }
    }

    /// Width of the key (and value) projection: `kvHeadCount × headDimension`.
    public var kvWidth: Int { kvHeadCount * headDimension }
}

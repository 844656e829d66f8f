import RASDDatastore
import RASDTrees

/// How the decoder proposes tokens for the target to verify.
public enum DecodingMethod: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Plain greedy decoding, one token per forward pass: the reference every other method equals.
    case ar
    /// Prompt lookup: retrieval from the prompt and the tokens generated so far.
    case pld
    /// Retrieval from a datastore (REST-style).
    case rest
    /// Datastore and prompt retrieval, fused into one tree.
    case retrieval
    /// The model drafter's tree alone.
    case draft
    /// RASD: the drafter's tree fused with datastore retrieval pruned by the drafter's root
    /// distribution, and with prompt lookup (the request's own context, unpruned).
    case rasd

    public var description: String { rawValue }

    /// Whether the method retrieves from the context.
    public var usesContext: Bool { self == .pld || self == .retrieval || self == .rasd }
    /// Whether the method retrieves from a datastore (when one is given).
    public var usesDatastore: Bool { self == .rest || self == .retrieval || self == .rasd }
    /// Whether the method needs a model drafter.
    public var usesDrafter: Bool { self == .draft || self == .rasd }
}

/// Something that answers retrieval queries: an open ``Datastore``, or a daemon client.
public protocol RetrievalSource: AnyObject, Sendable {
    /// A short description for messages ("indexes/code", "socket:/run/rasd.sock/code").
    var sourceDescription: String { get }
    /// The candidate continuations of `context`.
    func retrieve(context: [UInt32], parameters: RetrievalParameters) throws -> CandidateTrie
}

extension Datastore: RetrievalSource {
    public var sourceDescription: String { path }
}

/// A model drafter: proposes a tree of likely next tokens with probabilities (EAGLE-style heads
/// implement this). It reads the target's final hidden states (normalized: the output head's
/// input, `embeddingLength` floats per token), which the decoder hands over.
///
/// Calls: ``begin(prompt:hiddenStates:)`` once per request, then per decode step
/// ``draft(after:budget:rootTopK:)`` followed by ``accepted(tokens:hiddenStates:)``.
public protocol Drafter: AnyObject {
    /// A short name for statistics.
    var name: String { get }
    /// Starts a request: the target has committed `prompt`; `hiddenStates` holds its hidden
    /// state after every prompt token (`prompt.count × embeddingLength`, row-major), captured by
    /// the decoder at prefill (a request that reuses the prompt's KV entries gets them again).
    func begin(prompt: [UInt32], hiddenStates: [Float]) throws
    /// A draft tree of at most `budget` nodes for the tokens after `pendingToken` (the token the
    /// target will verify first), and the drafter's `rootTopK` most probable tokens at the root
    /// (what RASD prunes retrieval with).
    func draft(after pendingToken: UInt32, budget: Int, rootTopK: Int) throws -> (tree: TokenTree, root: TopTokens)
    /// The target accepted `tokens` (the pending token first, then the accepted draft tokens);
    /// `hiddenStates` are its hidden states after each of them (`tokens.count × embeddingLength`).
    func accepted(tokens: [UInt32], hiddenStates: [Float]) throws
}

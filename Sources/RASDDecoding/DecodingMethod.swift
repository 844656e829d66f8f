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
    /// RASD: the drafter's tree fused with retrieval pruned by the drafter's root distribution.
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
/// implement this).
public protocol Drafter: AnyObject {
    /// A short name for statistics.
    var name: String { get }
    /// Starts a request: the target has just committed `prompt` (its hidden states are the
    /// session's last forward pass).
    func begin(prompt: [UInt32]) throws
    /// A draft tree of at most `budget` nodes for the tokens after `pendingToken` (the token the
    /// target will verify first), and the drafter's distribution at the root, as top tokens.
    func draft(after pendingToken: UInt32, budget: Int) throws -> (tree: TokenTree, root: TopTokens)
    /// The target accepted `tokens` (the pending token first) at the session's last verification
    /// rows `rows`; the drafter updates its state from the target's hidden states there.
    func accepted(tokens: [UInt32], rows: [Int32]) throws
}

/// An error from the inference engine's API (model files report ``RASDGGUF/GGUFError``).
public enum EngineError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A token id is outside the model's vocabulary.
    case tokenOutOfRange(token: UInt32, vocabularySize: Int)
    /// The request would grow the context past the session's capacity.
    case contextFull(needed: Int, capacity: Int)
    /// A verification tree is malformed (its arrays differ in length, or a parent is not an
    /// earlier node or -1).
    case invalidTree(String)
    /// A commit path is not a chain of tree nodes from the last verification.
    case invalidPath(String)
    /// An argument is out of its range (the message names it).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .tokenOutOfRange(let token, let size):
            return "token id \(token) is outside the vocabulary (0..<\(size)); tokenize with this model's tokenizer"
        case .contextFull(let needed, let capacity):
            return "the context would need \(needed) positions but the session holds \(capacity); shorten the prompt or create the session with a larger capacity"
        case .invalidTree(let why):
            return "invalid verification tree: \(why) (parents[i] must be -1 or an earlier node index)"
        case .invalidPath(let why):
            return "invalid commit path: \(why) (pass node indices of the last verify, root first, each the parent of the next)"
        case .invalidArgument(let why):
            return why
        }
    }
}

/// An error building, combining or verifying token trees, naming the input at fault, the node
/// or row concerned and what to do about it.
public struct TokenTreeError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// Parallel arrays (tokens, parents, scores, ...) have different lengths.
        case lengthMismatch
        /// A parent index does not point to an earlier node (parents must precede children;
        /// -1 is the root).
        case parentOrder
        /// A token id is not below the vocabulary size.
        case tokenOutOfVocabulary
        /// A score or probability is negative, not finite, or (for probabilities) above 1.
        case invalidScore
        /// A retrieval count is zero or larger than its parent's count.
        case invalidCount
        /// A tree would exceed ``TokenTree/maximumCount`` nodes.
        case tooManyNodes
        /// A numeric argument (budget, top-k) is out of range.
        case invalidArgument
        /// The target's predictions do not match the layout (wrong number of rows, a row of
        /// probabilities that is negative, not finite or sums to zero).
        case invalidPrediction
        /// The layout has no pending token and the prediction for the root was not given.
        case missingRootPrediction
    }

    /// What went wrong.
    public var kind: Kind
    /// The input concerned, as the caller named it (`"draft"`, `"retrieval"`, `"targetArgmax"`).
    public var input: String
    /// The node or row concerned, when there is one.
    public var index: Int?
    /// Details, written for the person running the program.
    public var message: String

    /// Creates an error of `kind` about `input` (node or row `index`).
    public init(_ kind: Kind, input: String, index: Int? = nil, _ message: String) {
        self.kind = kind
        self.input = input
        self.index = index
        self.message = message
    }

    public var description: String {
        let hint: String
        switch kind {
        case .lengthMismatch: hint = "pass one entry per node in every array"
        case .parentOrder: hint = "list every parent before its children; use -1 for children of the root"
        case .tokenOutOfVocabulary:
            hint = "the tree and the model use different vocabularies; build both with the same tokenizer"
        case .invalidScore: hint = "pass finite, non-negative scores and probabilities in [0, 1]"
        case .invalidCount: hint = "retrieval counts must be positive and never exceed the parent's count"
        case .tooManyNodes: hint = "use a smaller tree or budget (at most \(TokenTree.maximumCount) nodes)"
        case .invalidArgument: hint = "pass a non-negative value"
        case .invalidPrediction:
            hint = "pass one prediction per layout row, in layout order (rows of non-negative probabilities)"
        case .missingRootPrediction:
            hint = "lay the tree out with its pending token, or pass the root's prediction"
        }
        let at = index.map { " at \($0)" } ?? ""
        return "\(input)\(at): \(message) (\(hint))"
    }
}

/// A token tree laid out for one verification forward pass: breadth-first rows, the ancestor
/// mask, position offsets, parent indices and the root-to-leaf paths.
///
/// **Rows.** With a pending token (the usual case), row 0 is the pending token: the last accepted
/// or bonus token, whose KV is not computed yet, and every speculative node hangs below it. Then
/// come the tree's nodes breadth-first: by depth, and within a depth in the order of their
/// parents' rows; siblings keep the order they have in the tree (a fused tree's ranking order,
/// best first). Children of one row are therefore contiguous: rows
/// `childOffsets[r] ..< childOffsets[r + 1]`.
///
/// **The engine contract.** ``tokens`` and ``parents`` are exactly the verification input the
/// engine takes: `parents[i] < i`, -1 meaning "directly after the committed context". The
/// engine returns, per row, the target's argmax (greedy) or probability row (sampling), indexed
/// like these rows; ``TreeVerification`` turns them into the accepted path.
///
/// **Mask.** Row `i` may attend to row `j` (besides the committed context) exactly when `j` is
/// `i` or an ancestor of `i`. The mask is bit-packed row-major: row `i` is the
/// ``maskWordsPerRow`` 64-bit words starting at `i * maskWordsPerRow`, bit `j % 64` of word
/// `j / 64` set when row `i` attends to row `j`. Since ancestors precede, only bits `j <= i`
/// are ever set.
public struct TreeLayout: Sendable, Hashable {
    /// True when row 0 is the pending token (see the type's documentation).
    public internal(set) var hasPendingToken = false
    /// Token of each row.
    public internal(set) var tokens: [UInt32] = []
    /// Parent row of each row; -1 directly after the committed context.
    public internal(set) var parents: [Int32] = []
    /// Position of each row relative to the first uncommitted position: the depth below the
    /// committed context counted from 0 (the pending token is 0, its children 1, ...). The
    /// position id is the committed length plus this offset.
    public internal(set) var positions: [Int32] = []
    /// Node of the source ``TokenTree`` each row holds; -1 for the pending token.
    public internal(set) var treeIndices: [Int32] = []
    /// Children of row `r` are rows `childOffsets[r] ..< childOffsets[r + 1]`; `count + 1`
    /// entries. Rows `0 ..< topLevelCount` hang directly below the committed context.
    public internal(set) var childOffsets: [Int32] = []
    /// Number of rows whose parent is -1 (1 with a pending token).
    public internal(set) var topLevelCount = 0
    /// Bit-packed ancestor mask (see the type's documentation).
    public internal(set) var mask: [UInt64] = []
    /// Words per mask row: `(count + 63) / 64`.
    public internal(set) var maskWordsPerRow = 0
    /// Rows without children, in row order.
    public internal(set) var leaves: [Int32] = []
    /// Root-to-leaf paths, one per leaf in ``leaves`` order, as rows, row-major with
    /// ``pathWidth`` entries per path; entry `d` of a path is the row at position `d`, and
    /// paths shorter than the width are padded with -1 (Medusa's "retrieve indices").
    public internal(set) var paths: [Int32] = []
    /// Entries per path: the longest path's length in rows (the largest position + 1).
    public internal(set) var pathWidth = 0

    /// An empty layout.
    public init() {}

    /// Number of rows (nodes plus the pending token).
    public var count: Int { tokens.count }

    /// True when row `row` attends to row `column`: `column` is `row` or one of its ancestors.
    @inlinable
    public func attends(row: Int, to column: Int) -> Bool {
        precondition(row >= 0 && row < count && column >= 0 && column < count, "row out of range")
        return mask[row &* maskWordsPerRow &+ column >> 6] & (1 << UInt64(column & 63)) != 0
    }

    /// Rows of the children of `row`.
    @inlinable
    public func children(of row: Int) -> Range<Int> {
        Int(childOffsets[row])..<Int(childOffsets[row + 1])
    }

    /// Rows whose KV entries an accepted path keeps, in order: the pending token (when the
    /// layout has one) followed by the accepted rows.
    public func keptRows(for accepted: AcceptedPath) -> [Int32] {
        (hasPendingToken ? [0] : []) + accepted.rows
    }
}

extension TreeLayout {
    /// Writable views of the per-row arrays.
    struct MutableRows {
        var tokens: UnsafeMutableBufferPointer<UInt32>
        var parents: UnsafeMutableBufferPointer<Int32>
        var positions: UnsafeMutableBufferPointer<Int32>
        var treeIndices: UnsafeMutableBufferPointer<Int32>
        var childOffsets: UnsafeMutableBufferPointer<Int32>
    }

    /// Sets the row count and calls `body` with writable views of the per-row arrays
    /// (`childOffsets` gets `count + 1` entries); `body` writes every entry.
    mutating func withWritableRows(count: Int, _ body: (MutableRows) -> Void) {
        tokens.resize(to: count, fill: 0)
        parents.resize(to: count, fill: 0)
        positions.resize(to: count, fill: 0)
        treeIndices.resize(to: count, fill: 0)
        childOffsets.resize(to: count + 1, fill: 0)
        tokens.withUnsafeMutableBufferPointer { tokens in
            parents.withUnsafeMutableBufferPointer { parents in
                positions.withUnsafeMutableBufferPointer { positions in
                    treeIndices.withUnsafeMutableBufferPointer { treeIndices in
                        childOffsets.withUnsafeMutableBufferPointer { childOffsets in
                            body(MutableRows(tokens: tokens, parents: parents, positions: positions,
                                             treeIndices: treeIndices, childOffsets: childOffsets))
                        }
                    }
                }
            }
        }
    }
}

/// The index alphabet: token `t` is symbol `t + 2`; symbol 1 ends a document and symbol 0 ends
/// the text. Both structural symbols sort below every token, and no context contains them, so
/// a match never crosses a document boundary and a continuation stops at one.
enum Alphabet {
    static let endOfText = 0
    static let documentBoundary = 1
    static let firstToken = 2

    @inline(__always) static func symbol(token: UInt32) -> Int { Int(token) + firstToken }
    @inline(__always) static func token(symbol: Int) -> UInt32 { UInt32(symbol - firstToken) }
    static func symbolCount(vocabularySize: Int) -> Int { vocabularySize + firstToken }
}

/// A read-only view of one shard's FM-index, pointing into the memory map.
struct Shard: @unchecked Sendable {
    // @unchecked: immutable views of the map, valid while the owning Datastore's read
    // transaction is open; the Datastore keeps it open for its whole life.

    /// Rows of the BWT (tokens and boundaries of the shard, plus one).
    let rows: Int
    /// First row of every symbol; `symbolCount + 1` entries.
    let firstRow: UnsafePointer<UInt32>
    /// Wavelet-tree levels by depth.
    let levels: [NibbleSequence]
    /// Start of each node's segment in its level.
    let levelStart: UnsafePointer<UInt32>
    /// Rank of each nibble value at each node's segment start: `rankAtStart[node * 16 + x]`.
    let rankAtStart: UnsafePointer<UInt32>
    /// Length of each node's segment.
    let nodeLength: UnsafePointer<UInt32>

    /// Number of positions of nibble `x` in node `node` before local position `i`.
    ///
    /// Returns -1 when the stored structure would lead outside its level (a damaged datastore),
    /// so callers stop instead of reading out of bounds.
    @inline(__always)
    func rank(node: Int, depth: Int, nibble x: Int, _ i: Int) -> Int {
        let level = levels[depth]
        let position = Int(levelStart[node]) &+ i
        guard i <= Int(nodeLength[node]), position <= level.count else { return -1 }
        return level.rank(x, position) &- Int(rankAtStart[node &* 16 &+ x])
    }
}

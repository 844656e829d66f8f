import Dispatch

/// The index of one shard, built in memory and ready to be written.
///
/// The index is an FM-index of the shard's text reversed: backward search in the reversed text
/// appends tokens on the right of a pattern, so one structure serves both the longest-suffix
/// search and the enumeration of continuations (the symbols before a suffix of the reversed text
/// are the tokens after the pattern in the original).
struct BuiltShard {
    /// Rows of the BWT: symbols of the text plus the end marker.
    var rows: Int
    /// `firstRow[c]`: first BWT row of the suffixes starting with symbol `c` (symbolCount + 1 entries).
    var firstRow: [UInt32]
    /// Nibble sequences of the wavelet tree, by depth (one value per byte, encoded on write).
    var levels: [UnsafeMutableBufferPointer<UInt8>]
    /// Start of every node's segment in its level.
    var levelStart: [UInt32]
    /// Length of every node's segment.
    var nodeLength: [UInt32]
    /// (row, position in the reversed text) pairs every `anchorStride` positions, for verification.
    var anchors: [UInt32]

    func deallocate() { for l in levels { l.deallocate() } }
}

enum ShardConstruction {
    /// Rows whose suffix starts at a multiple of this in the reversed text become anchors.
    static let anchorStride = 1 << 16

    /// Builds the index of the reversed text `reversed` (symbols, see ``Alphabet``).
    /// `reversed` is read but not modified; it may be freed afterwards.
    static func build<S: FixedWidthInteger & UnsignedInteger & Sendable>(
        reversed: UnsafeBufferPointer<S>, code: SymbolCode, threads: Int
    ) -> BuiltShard {
        let n = reversed.count
        let rows = n + 1
        let symbolCount = code.symbolCount

        // Suffix array of the reversed text.
        let sa = UnsafeMutableBufferPointer<Int32>.allocate(capacity: n)
        defer { sa.deallocate() }
        SuffixSorting.sort(text: reversed, alphabetSize: symbolCount, into: sa)

        // BWT: row 0 is the empty suffix (end of text); row r >= 1 is sa[r-1].
        let bwt = UnsafeMutableBufferPointer<S>.allocate(capacity: rows)
        defer { bwt.deallocate() }
        bwt[0] = reversed[n - 1]
        let parts = max(1, min(threads, 8))
        let chunk = (rows + parts - 1) / parts
        let anchorLists = UnsafeMutableBufferPointer<[UInt32]>.allocate(capacity: parts)
        anchorLists.initialize(repeating: [])
        defer { anchorLists.deinitialize(); anchorLists.deallocate() }
        let bwtBase = UnsafeSendable(bwt.baseAddress), saBase = UnsafeSendable(sa.baseAddress)
        let textBase = UnsafeSendable(reversed.baseAddress), lists = UnsafeSendable(anchorLists.baseAddress)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            guard let out = bwtBase.value, let s = saBase.value, let text = textBase.value, let anchors = lists.value else { return }
            var local: [UInt32] = []
            let lo = max(1, part * chunk), hi = min(rows, (part + 1) * chunk)
            if lo < hi {
                for r in lo..<hi {
                    let p = Int(s[r - 1])
                    out[r] = p > 0 ? text[p - 1] : 0
                    if p % anchorStride == 0 { local.append(UInt32(r)); local.append(UInt32(p)) }
                }
            }
            anchors[part] = local
        }
        let anchors = anchorLists.flatMap { $0 }

        // Symbol counts and first rows.
        var counts = [Int](repeating: 0, count: symbolCount)
        for r in 0..<rows { counts[Int(bwt[r])] += 1 }
        var firstRow = [UInt32](repeating: 0, count: symbolCount + 1)
        for c in 0..<symbolCount { firstRow[c + 1] = firstRow[c] + UInt32(counts[c]) }

        // Node segments: a node's length is the total count of the symbols below it; segments of
        // one depth are laid out in node order.
        let nodeCount = code.nodeCount
        var nodeLength = [Int](repeating: 0, count: nodeCount)
        for v in stride(from: nodeCount - 1, through: 0, by: -1) {
            var total = 0
            for x in 0..<16 {
                let child = code.children[v * 16 + x]
                if child == SymbolCode.empty { continue }
                total += child >= 0 ? nodeLength[Int(child)] : counts[Int(~child)]
            }
            nodeLength[v] = total
        }
        let depthCount = Int(code.depth.max() ?? 0) + 1
        var levelLength = [Int](repeating: 0, count: depthCount)
        var levelStart = [UInt32](repeating: 0, count: nodeCount)
        for v in 0..<nodeCount {
            let d = Int(code.depth[v])
            levelStart[v] = UInt32(levelLength[d])
            levelLength[d] += nodeLength[v]
        }

        // Distribute every BWT symbol's nibbles to the node segments along its code path.
        let (nibbles, lengths) = code.codes()
        let levels = levelLength.map { UnsafeMutableBufferPointer<UInt8>.allocate(capacity: $0) }
        var cursor = levelStart.map(Int.init)
        code.children.withUnsafeBufferPointer { children in
            for r in 0..<rows {
                let c = Int(bwt[r])
                var bits = nibbles[c]
                var node = 0
                for d in 0..<Int(lengths[c]) {
                    let x = Int(bits & 15)
                    bits >>= 4
                    levels[d][cursor[node]] = UInt8(x)
                    cursor[node] += 1
                    node = Int(children[node * 16 + x])
                }
            }
        }
        return BuiltShard(
            rows: rows, firstRow: firstRow, levels: levels, levelStart: levelStart,
            nodeLength: nodeLength.map { UInt32($0) }, anchors: anchors)
    }
}

/// Wraps a pointer so that it can be captured by `concurrentPerform` closures; the caller
/// guarantees that the threads touch disjoint parts.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

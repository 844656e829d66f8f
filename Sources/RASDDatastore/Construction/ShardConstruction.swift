import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// The Burrows-Wheeler transform of `reversed` (symbols, see ``Alphabet``), with anchors.
    ///
    /// Row 0 is the empty suffix (end of text); row r >= 1 is suffix `sa[r-1]`. The transform is
    /// written over the suffix array as it is consumed, so the peak is the text plus the suffix
    /// array (6 bytes per token for 16-bit symbols) and the result is shrunk to `rows` symbols.
    /// The caller owns the returned buffer (free with `free`).
    static func transform<S: FixedWidthInteger & UnsignedInteger & Sendable>(
        reversed: UnsafeBufferPointer<S>, symbolCount: Int, clock: inout StageClock
    ) -> (bwt: UnsafeMutableBufferPointer<S>, anchors: [UInt32]) {
        let n = reversed.count
        let rows = n + 1
        guard let saRaw = malloc((n + 1) * 4) else { fatalError("out of memory for the suffix array of \(n) symbols") }
        let sa = UnsafeMutableBufferPointer(start: saRaw.assumingMemoryBound(to: Int32.self), count: n)
        SuffixSorting.sort(text: reversed, alphabetSize: symbolCount, into: sa)
        clock.lap("suffix array")

        // Two threads: the first half of the rows in place, the second half into a side buffer
        // (in-place writes of one never reach suffix-array entries the other still reads).
        let wide = MemoryLayout<S>.size == 4
        let split = max(2, rows / 2)
        let side = UnsafeMutableBufferPointer<S>.allocate(capacity: max(0, rows - (split - 1)))
        defer { side.deallocate() }
        let bwt = UnsafeSendable(saRaw.assumingMemoryBound(to: S.self))
        let saBase = UnsafeSendable(UnsafePointer(saRaw.assumingMemoryBound(to: Int32.self)))
        let text = UnsafeSendable(reversed.baseAddress.unsafelyUnwrapped)
        let sideBase = UnsafeSendable(side.baseAddress.unsafelyUnwrapped)
        let lists = UnsafeMutableBufferPointer<[UInt32]>.allocate(capacity: 2)
        lists.initialize(repeating: [])
        defer { lists.deinitialize(); lists.deallocate() }
        let listBase = UnsafeSendable(lists.baseAddress.unsafelyUnwrapped)
        @Sendable func symbol(_ r: Int, _ anchors: inout [UInt32]) -> S {
            let p = Int(saBase.value[r - 1])
            if p % anchorStride == 0 { anchors.append(UInt32(r)); anchors.append(UInt32(p)) }
            return p > 0 ? text.value[p - 1] : 0
        }
        // The first side row reads the entry that the first thread's first 32-bit write lands on:
        // take it before the threads start.
        let boundary = split - 1
        var boundaryAnchors: [UInt32] = []
        side[0] = symbol(boundary, &boundaryAnchors)
        DispatchQueue.concurrentPerform(iterations: 2) { part in
            var anchors: [UInt32] = []
            if part == 0 {
                // 16-bit symbols land below the entries still to read when going forward;
                // 32-bit ones land on the entry just consumed when going backward.
                if wide {
                    var r = boundary - 1
                    while r >= 1 { bwt.value[r] = symbol(r, &anchors); r -= 1 }
                } else {
                    for r in 1..<boundary { bwt.value[r] = symbol(r, &anchors) }
                }
            } else {
                for r in (boundary + 1)..<rows { sideBase.value[r - boundary] = symbol(r, &anchors) }
            }
            listBase.value[part] = anchors
        }
        let out = saRaw.assumingMemoryBound(to: S.self)
        for r in boundary..<rows { out[r] = side[r - boundary] }
        out[0] = reversed[n - 1]
        let shrunk = realloc(saRaw, rows * MemoryLayout<S>.size) ?? saRaw
        clock.lap("Burrows-Wheeler transform")
        var anchors = lists[0]
        anchors.append(contentsOf: boundaryAnchors)
        anchors.append(contentsOf: lists[1])
        return (UnsafeMutableBufferPointer(start: shrunk.assumingMemoryBound(to: S.self), count: rows), anchors)
    }

    /// The wavelet tree of `bwt` under `code`: node segments and the nibbles of every level.
    static func waveletTree<S: FixedWidthInteger & UnsignedInteger>(
        bwt: UnsafeBufferPointer<S>, anchors: [UInt32], code: SymbolCode, clock: inout StageClock
    ) -> BuiltShard {
        let rows = bwt.count
        let symbolCount = code.symbolCount

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
        clock.lap("wavelet tree")
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

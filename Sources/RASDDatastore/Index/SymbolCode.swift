/// The shape of the wavelet tree: a 16-ary prefix code over the index alphabet, built by
/// Huffman's algorithm from symbol frequencies and limited to ``maxLength`` nibbles.
///
/// Frequent symbols get short codes, so the backward-search steps and continuation
/// expansions that dominate queries touch two or three levels instead of four (each level is one
/// cache miss on a large datastore). One code serves every shard of a datastore, so a node of the
/// tree means the same symbol set in each shard and counts can be summed across shards.
struct SymbolCode: Sendable, Equatable {
    /// Marks an empty child slot.
    static let empty = Int32.min
    /// Longest code, in nibbles.
    static let maxLength = 8

    /// Number of symbols (the vocabulary size plus the two structural symbols).
    let symbolCount: Int
    /// `children[node * 16 + nibble]`: an internal node index (>= 0), `~symbol` for a leaf, or ``empty``.
    /// Internal nodes are numbered breadth-first from the root, node 0.
    let children: [Int32]
    /// Depth of every internal node (the root has depth 0).
    let depth: [UInt8]
    /// Smallest symbol below every internal node; a lower bound used to break ties in token order.
    let minSymbol: [UInt32]

    /// Number of internal nodes.
    var nodeCount: Int { depth.count }

    init(symbolCount: Int, children: [Int32], depth: [UInt8], minSymbol: [UInt32]) {
        self.symbolCount = symbolCount
        self.children = children
        self.depth = depth
        self.minSymbol = minSymbol
    }

    /// Builds the code for `frequencies` (one entry per symbol). Every symbol gets a code, also
    /// those never seen, so that documents appended later can use them.
    init(frequencies: [UInt64]) {
        let n = frequencies.count
        precondition(n >= 2)
        var weights = frequencies.map { $0 + 1 }
        let total = weights.reduce(0, +)
        var attempt = 0
        while true {
            if let code = Self.huffman(weights: weights) {
                self = code
                return
            }
            // Too deep: flatten the distribution a little and try again.
            attempt += 1
            let lift = max(1, total >> UInt64(4 * (Self.maxLength - 1) - attempt))
            weights = weights.map { $0 + lift }
        }
    }

    /// One 16-ary Huffman construction; nil when a code would exceed ``maxLength``.
    private static func huffman(weights: [UInt64]) -> SymbolCode? {
        let n = weights.count
        // Pad with zero-weight dummies so every merge takes exactly 16 items.
        let dummies = (15 - (n - 1) % 15) % 15
        // Items: leaves are ~symbol (or `empty` for dummies), merged nodes are indices into `merged`.
        struct Item { var weight: UInt64; var minSymbol: UInt32; var ref: Int32 }
        var heap: [Item] = []
        heap.reserveCapacity(n + dummies)
        for s in 0..<n { heap.append(Item(weight: weights[s], minSymbol: UInt32(s), ref: ~Int32(s))) }
        for _ in 0..<dummies { heap.append(Item(weight: 0, minSymbol: UInt32.max, ref: empty)) }
        func less(_ a: Item, _ b: Item) -> Bool { a.weight != b.weight ? a.weight < b.weight : a.minSymbol < b.minSymbol }
        var queue = MinHeap(items: heap, less: less)
        var merged: [[Item]] = []
        while queue.count > 1 {
            var group: [Item] = []
            for _ in 0..<16 { if let x = queue.pop() { group.append(x) } }
            // Order children by their smallest symbol: deterministic, and nearby tokens stay nearby.
            group.sort { $0.minSymbol < $1.minSymbol }
            merged.append(group)
            let w = group.reduce(0) { $0 + $1.weight }
            let minS = group.map(\.minSymbol).min() ?? UInt32.max
            queue.push(Item(weight: w, minSymbol: minS, ref: Int32(merged.count - 1)))
        }
        guard let root = queue.pop(), root.ref >= 0 else { return nil }
        // Breadth-first renumbering from the root.
        var order: [Int32] = [root.ref]
        var newIndex = [Int32](repeating: -1, count: merged.count)
        var depths: [UInt8] = [0]
        newIndex[Int(root.ref)] = 0
        var head = 0
        while head < order.count {
            let old = Int(order[head])
            for item in merged[old] where item.ref >= 0 {
                newIndex[Int(item.ref)] = Int32(order.count)
                order.append(item.ref)
                depths.append(depths[head] + 1)
            }
            head += 1
        }
        // Leaves sit one level below their parent; the code length is that depth.
        guard let deepest = depths.max(), Int(deepest) < maxLength else { return nil }
        var children = [Int32](repeating: empty, count: order.count * 16)
        var minSymbol = [UInt32](repeating: 0, count: order.count)
        for (i, old) in order.enumerated() {
            let group = merged[Int(old)]
            minSymbol[i] = group.map(\.minSymbol).min() ?? UInt32.max
            for (x, item) in group.enumerated() {
                children[i * 16 + x] = item.ref >= 0 ? newIndex[Int(item.ref)] : item.ref
            }
        }
        return SymbolCode(symbolCount: n, children: children, depth: depths, minSymbol: minSymbol)
    }

    /// The code of every symbol: its nibbles (the first in the low bits) and its length.
    func codes() -> (nibbles: [UInt32], lengths: [UInt8]) {
        var nibbles = [UInt32](repeating: 0, count: symbolCount)
        var lengths = [UInt8](repeating: 0, count: symbolCount)
        // Iterative depth-first walk carrying the path so far.
        var stack: [(node: Int, code: UInt32, depth: Int)] = [(0, 0, 0)]
        while let (node, code, depth) = stack.popLast() {
            for x in 0..<16 {
                let child = children[node * 16 + x]
                if child == Self.empty { continue }
                let c = code | (UInt32(x) << UInt32(4 * depth))
                if child >= 0 {
                    stack.append((Int(child), c, depth + 1))
                } else {
                    nibbles[Int(~child)] = c
                    lengths[Int(~child)] = UInt8(depth + 1)
                }
            }
        }
        return (nibbles, lengths)
    }

    /// Checks the structure read from disk: every slot in range, every symbol exactly once,
    /// children deeper than their parent. Returns a description of the first problem.
    func validationError() -> String? {
        guard children.count == nodeCount * 16, minSymbol.count == nodeCount, nodeCount > 0 else { return "tree tables differ in length" }
        var seen = [Bool](repeating: false, count: symbolCount)
        var seenNodes = 1
        for v in 0..<nodeCount {
            for x in 0..<16 {
                let c = children[v * 16 + x]
                if c == Self.empty { continue }
                if c >= 0 {
                    guard Int(c) > v, Int(c) < nodeCount, depth[Int(c)] == depth[v] + 1, Int(depth[Int(c)]) < Self.maxLength else {
                        return "node \(v) has an invalid child \(c)"
                    }
                    seenNodes += 1
                } else {
                    let s = Int(~c)
                    guard s < symbolCount, !seen[s] else { return "symbol \(s) appears twice or is out of range" }
                    seen[s] = true
                }
            }
        }
        guard seenNodes == nodeCount else { return "the tree is not connected" }
        guard seen.allSatisfy({ $0 }) else { return "some symbols have no code" }
        return nil
    }
}

/// A small binary min-heap used for code construction.
struct MinHeap<Element> {
    private var items: [Element]
    private let less: (Element, Element) -> Bool

    init(items: [Element], less: @escaping (Element, Element) -> Bool) {
        self.items = []
        self.less = less
        self.items.reserveCapacity(items.count)
        for x in items { push(x) }
    }

    var count: Int { items.count }

    mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard less(items[i], items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && less(items[l], items[m]) { m = l }
                if r < items.count && less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// The `k` most probable tokens of a distribution, most probable first: what pruning needs of the
/// drafter's distribution at the root, and what an EAGLE-style drafter expands at each node.
///
/// **Tie rule**: higher probability first; equal probabilities rank the smaller token id first.
/// Tokens whose probability is zero, negative or NaN are never selected, so a distribution with
/// fewer than `k` positive entries yields fewer than `k` tokens.
///
/// ``select(from:k:)`` reuses the storage, so a decode loop that keeps one `TopTokens` does not
/// allocate after the first step.
public struct TopTokens: Sendable, Hashable {
    /// Selected tokens, most probable first.
    public private(set) var tokens: [UInt32] = []
    /// Their probabilities, in the same order (non-increasing).
    public private(set) var probabilities: [Float] = []

    /// No tokens.
    public init() {}

    /// Tokens a drafter has already ranked, with their probabilities.
    ///
    /// - Throws: ``TokenTreeError`` when the arrays differ in length or a probability is
    ///   negative, not finite or above 1.
    public init(tokens: [UInt32], probabilities: [Float]) throws {
        guard tokens.count == probabilities.count else {
            throw TokenTreeError(.lengthMismatch, input: "topTokens",
                                 "\(tokens.count) tokens but \(probabilities.count) probabilities")
        }
        for (i, p) in probabilities.enumerated() where !(p >= 0 && p <= 1) {
            throw TokenTreeError(.invalidScore, input: "topTokens", index: i, "probability \(p) is not in [0, 1]")
        }
        self.tokens = tokens
        self.probabilities = probabilities
    }

    /// The `k` most probable tokens of `distribution` (indexed by token id).
    public init(distribution: [Float], k: Int) throws {
        try select(from: distribution, k: k)
    }

    /// Number of selected tokens (at most `k`).
    public var count: Int { tokens.count }

    /// The probability of `token` when it is selected, else nil.
    @inlinable
    public func probability(of token: UInt32) -> Float? {
        // k is small (a drafter's top-k), so a scan beats any index.
        for i in tokens.indices where tokens[i] == token { return probabilities[i] }
        return nil
    }

    /// Selects the `k` most probable tokens of `distribution`, replacing the current selection.
    ///
    /// - Throws: ``TokenTreeError`` when `k` is negative.
    public mutating func select(from distribution: [Float], k: Int) throws {
        try distribution.withUnsafeBufferPointer { try select(from: $0, k: k) }
    }

    /// Selects the `k` most probable tokens of `distribution`, replacing the current selection.
    ///
    /// One pass over the distribution. The pass screens 64 probabilities at a time against the
    /// current k-th best and only looks closer at the rare blocks that may hold a better one, so
    /// a 49,152-token row costs about as much as reading it once.
    ///
    /// - Throws: ``TokenTreeError`` when `k` is negative.
    public mutating func select(from distribution: UnsafeBufferPointer<Float>, k: Int) throws {
        guard k >= 0 else { throw TokenTreeError(.invalidArgument, input: "topK", "top-k is \(k)") }
        let k = min(k, distribution.count)
        tokens.removeAll(keepingCapacity: true)
        probabilities.removeAll(keepingCapacity: true)
        guard k > 0, let base = distribution.baseAddress else { return }
        tokens.append(contentsOf: repeatElement(0, count: k))
        probabilities.append(contentsOf: repeatElement(0, count: k))
        let selected = tokens.withUnsafeMutableBufferPointer { tokens in
            probabilities.withUnsafeMutableBufferPointer { probabilities in
                Self.scan(base, count: distribution.count, k: k, tokens: tokens, probabilities: probabilities)
            }
        }
        tokens.removeLast(k - selected)
        probabilities.removeLast(k - selected)
    }

    /// The selection proper; returns how many tokens were selected.
    private static func scan(
        _ values: UnsafePointer<Float>, count: Int, k: Int,
        tokens: UnsafeMutableBufferPointer<UInt32>, probabilities: UnsafeMutableBufferPointer<Float>
    ) -> Int {
        var selected = 0
        // Only values strictly above the threshold can enter: 0 until k are selected (so zero,
        // negative and NaN never do), then the k-th best. Ids are scanned in ascending order, so
        // a later value equal to the k-th best ranks after it and is rightly skipped.
        var threshold: Float = 0

        @inline(__always) func insert(_ token: Int, _ p: Float) {
            var position = selected < k ? selected : k - 1
            if selected < k { selected += 1 }
            while position > 0 && probabilities[position - 1] < p {
                probabilities[position] = probabilities[position - 1]
                tokens[position] = tokens[position - 1]
                position -= 1
            }
            probabilities[position] = p
            tokens[position] = UInt32(truncatingIfNeeded: token)
            if selected == k { threshold = probabilities[k - 1] }
        }

        // Blocks of 64 are screened on the floats' bit patterns as Int32: for a threshold t >= 0,
        // a value x exceeds it only if bits(t) - bits(x) is negative (exactly so for
        // non-negative x; negative x and NaN may pass the screen and are then rejected by the
        // exact compare). OR-ing the differences keeps any negative sign: a subtract and an OR
        // per value, which vectorises on baseline x86-64. Swift's SIMD16<Float> compare-and-any
        // did not (49,152 floats, one run on the 2-core EPYC: 3.2 us against 326 us, 13-27 us
        // for a plain scalar compare loop, 4.3 us for an Int16 max of the top halves).
        values.withMemoryRebound(to: Int32.self, capacity: count) { bits in
            @inline(__always) func value(_ token: Int) -> Float { Float(bitPattern: UInt32(bitPattern: bits[token])) }
            let blocks = count / 64
            var block = 0
            while block < blocks {
                let start = block * 64
                let limit = Int32(bitPattern: threshold.bitPattern)
                var screen: Int32 = 0
                for i in start..<(start + 64) { screen |= limit &- bits[i] }
                if screen < 0 {
                    for token in start..<(start + 64) where value(token) > threshold {
                        insert(token, value(token))
                    }
                }
                block += 1
            }
            for token in (blocks * 64)..<count where value(token) > threshold {
                insert(token, value(token))
            }
        }
        return selected
    }
}

/// The outcome of verifying a tree: the accepted path and the bonus token.
public struct AcceptedPath: Sendable, Hashable {
    /// Layout rows of the accepted speculative nodes, from the top down (the pending token's
    /// row is never listed; ``TreeLayout/keptRows(for:)`` adds it).
    public internal(set) var rows: [Int32] = []
    /// Their tokens: the tokens to emit before the bonus token.
    public internal(set) var tokens: [UInt32] = []
    /// The target's own next token after the accepted path (argmax or sampled).
    public internal(set) var bonusToken: UInt32 = 0

    /// An empty result, to be filled by ``TreeVerification``.
    public init() {}

    /// Tokens this step emits: the accepted tokens plus the bonus token (the Spec-Bench
    /// acceptance length).
    public var acceptanceLength: Int { tokens.count + 1 }

    /// The tokens this step emits, in order: ``tokens`` then ``bonusToken``.
    public var emittedTokens: [UInt32] { tokens + [bonusToken] }

    mutating func removeAll() {
        rows.removeAll(keepingCapacity: true)
        tokens.removeAll(keepingCapacity: true)
    }

    mutating func accept(row: Int, token: UInt32) {
        rows.append(Int32(row))
        tokens.append(token)
    }
}

/// Acceptance rules for a verified tree (RASD step 5): which path the target keeps, and the bonus
/// token after it.
///
/// The target's predictions are indexed like the ``TreeLayout`` rows: entry `r` is the target's
/// prediction for the token **after** row `r`'s path. With a pending token, row 0's prediction
/// is the prediction at the root. Without one, pass the root's prediction separately.
///
/// **Tie rules**, which matter only for trees built by hand with duplicate siblings (fusion
/// merges them): greedy acceptance takes the longest accepted path, the first in row order among
/// equally long ones; sampling tries siblings in row order, so a duplicate of a rejected token
/// is rejected too (its probability is already 0).
public enum TreeVerification {
    /// Greedy acceptance: the longest path whose every token equals the target's argmax after
    /// its parent, then the argmax after that path as the bonus token. The emitted tokens equal
    /// the target's own greedy decoding token for token.
    ///
    /// - Parameters:
    ///   - tree: the layout that was verified.
    ///   - targetArgmax: the target's argmax after each row, one entry per row.
    ///   - rootArgmax: the target's argmax at the root; required when the layout has no pending
    ///     token, ignored otherwise.
    /// - Throws: ``TokenTreeError`` when the predictions do not fit the layout.
    public static func acceptGreedy(
        tree: TreeLayout, targetArgmax: [UInt32], rootArgmax: UInt32? = nil
    ) throws -> AcceptedPath {
        var result = AcceptedPath()
        try acceptGreedy(tree: tree, targetArgmax: targetArgmax, rootArgmax: rootArgmax, into: &result)
        return result
    }

    /// ``acceptGreedy(tree:targetArgmax:rootArgmax:)`` into a reused result (no allocation after
    /// the first steps).
    public static func acceptGreedy(
        tree: TreeLayout, targetArgmax: [UInt32], rootArgmax: UInt32? = nil, into result: inout AcceptedPath
    ) throws {
        result.removeAll()
        guard targetArgmax.count == tree.count else {
            throw TokenTreeError(.invalidPrediction, input: "targetArgmax",
                                 "\(targetArgmax.count) predictions for \(tree.count) layout rows")
        }
        let rootPrediction: UInt32
        if tree.hasPendingToken {
            rootPrediction = targetArgmax[0]
        } else {
            guard let rootArgmax else {
                throw TokenTreeError(.missingRootPrediction, input: "rootArgmax", "the layout has no pending token")
            }
            rootPrediction = rootArgmax
        }
        // One pass in row order (parents first): a row is accepted when its parent is and its
        // token is the parent's argmax. The deepest accepted row ends the path; of equally deep
        // ones the first row wins. (A plain walk down would do for trees without duplicate
        // siblings; this also finds the right path below duplicates in hand-built trees.)
        let rows = tree.count
        var last = tree.hasPendingToken ? 0 : -1
        var lastPosition: Int32 = tree.hasPendingToken ? 0 : -1
        withUnsafeTemporaryAllocation(of: Bool.self, capacity: max(rows, 1)) { accepted in
            for row in 0..<rows {
                let parent = Int(tree.parents[row])
                if parent < 0 {
                    // The pending token is part of the context; top-level nodes follow the root.
                    accepted[row] = tree.hasPendingToken || tree.tokens[row] == rootPrediction
                } else {
                    accepted[row] = accepted[parent] && tree.tokens[row] == targetArgmax[parent]
                }
                if accepted[row] && tree.positions[row] > lastPosition {
                    last = row
                    lastPosition = tree.positions[row]
                }
            }
        }
        var row = last
        while row >= (tree.hasPendingToken ? 1 : 0) {
            result.accept(row: row, token: tree.tokens[row])
            row = Int(tree.parents[row])
        }
        result.rows.reverse()
        result.tokens.reverse()
        result.bonusToken = last >= 0 ? targetArgmax[last] : rootPrediction
    }

    /// Sampling acceptance by recursive rejection over siblings, which keeps the emitted tokens
    /// distributed exactly as the target's own sampling for any tree that does not depend on
    /// the random draws.
    ///
    /// At the current node with target distribution `p`, the children are tried in row order:
    /// child token `x` is accepted with probability `p(x)`; if rejected, `p(x)` is set to 0 and
    /// `p` renormalised before the next child. An accepted child becomes the current node. When
    /// every child is rejected (or there is none), the bonus token is drawn from what is left of
    /// `p`. Rows need not be normalised (they are divided by their sum), so `exp(logits)` works
    /// as well as probabilities; apply temperature, top-p and the like before.
    ///
    /// Random draws, in order: one uniform double per tried child, one for the bonus token, all
    /// from `rng`; equal inputs and generator states give equal results.
    ///
    /// - Parameters:
    ///   - tree: the layout that was verified.
    ///   - targetProbabilities: the target's distribution after each row, row-major, one row of
    ///     the vocabulary size per layout row.
    ///   - rootProbabilities: the distribution at the root; required when the layout has no
    ///     pending token, ignored otherwise.
    ///   - rng: the random source.
    /// - Throws: ``TokenTreeError`` when the rows do not fit the layout, a visited row holds a
    ///   negative or non-finite entry or sums to zero, or a proposed token is outside the rows.
    public static func acceptSampling(
        tree: TreeLayout, targetProbabilities: [Float], rootProbabilities: [Float]? = nil,
        rng: inout some RandomNumberGenerator
    ) throws -> AcceptedPath {
        var result = AcceptedPath()
        try targetProbabilities.withUnsafeBufferPointer { rows in
            if let rootProbabilities {
                try rootProbabilities.withUnsafeBufferPointer { root in
                    try acceptSampling(tree: tree, targetProbabilities: rows, rootProbabilities: root,
                                       rng: &rng, into: &result)
                }
            } else {
                try acceptSampling(tree: tree, targetProbabilities: rows, rootProbabilities: nil,
                                   rng: &rng, into: &result)
            }
        }
        return result
    }

    /// ``acceptSampling(tree:targetProbabilities:rootProbabilities:rng:)`` over the engine's
    /// buffer, into a reused result (no allocation after the first steps).
    public static func acceptSampling(
        tree: TreeLayout, targetProbabilities: UnsafeBufferPointer<Float>,
        rootProbabilities: UnsafeBufferPointer<Float>? = nil,
        rng: inout some RandomNumberGenerator, into result: inout AcceptedPath
    ) throws {
        result.removeAll()
        var distribution: UnsafeBufferPointer<Float>
        var children: Range<Int>
        var rowName: Int?
        let vocabularySize: Int
        if tree.hasPendingToken {
            vocabularySize = targetProbabilities.count / tree.count
            distribution = UnsafeBufferPointer(rebasing: targetProbabilities[0..<vocabularySize])
            children = tree.children(of: 0)
            rowName = 0
        } else {
            guard let rootProbabilities else {
                throw TokenTreeError(.missingRootPrediction, input: "rootProbabilities",
                                     "the layout has no pending token")
            }
            vocabularySize = rootProbabilities.count
            distribution = rootProbabilities
            children = 0..<tree.topLevelCount
            rowName = nil
        }
        guard vocabularySize > 0, targetProbabilities.count == tree.count * vocabularySize else {
            throw TokenTreeError(.invalidPrediction, input: "targetProbabilities",
                                 "\(targetProbabilities.count) values do not make \(tree.count) rows"
                                 + (tree.hasPendingToken ? "" : " of \(vocabularySize) (the root row's size)"))
        }

        // Rejected tokens of the current node, at most one per child; kept on the stack.
        let widest = max(tree.topLevelCount, widestFamily(tree))
        try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: max(widest, 1)) { rejected in
            walk: while true {
                let total = try mass(of: distribution, row: rowName)
                var remaining = total
                var rejectedCount = 0
                for child in children {
                    let token = tree.tokens[child]
                    guard Int(token) < vocabularySize else {
                        throw TokenTreeError(.invalidPrediction, input: "targetProbabilities", index: child,
                                             "proposed token \(token) is outside rows of \(vocabularySize) tokens")
                    }
                    let isRejected = rejected.prefix(rejectedCount).contains(token)
                    let p = isRejected ? 0 : Double(distribution[Int(token)])
                    // Accept with probability p(x) / remaining mass (the renormalised p(x)).
                    if uniform(&rng) * remaining < p {
                        result.accept(row: child, token: token)
                        distribution = UnsafeBufferPointer(
                            rebasing: targetProbabilities[(child * vocabularySize)..<((child + 1) * vocabularySize)])
                        children = tree.children(of: child)
                        rowName = child
                        continue walk
                    }
                    if !isRejected {
                        rejected[rejectedCount] = token
                        rejectedCount += 1
                        remaining -= p
                    }
                }
                let residual = UnsafeMutableBufferPointer(rebasing: rejected[0..<rejectedCount])
                sortAscending(residual)
                result.bonusToken = sample(distribution, excluding: UnsafeBufferPointer(residual),
                                           mass: remaining, rng: &rng)
                return
            }
        }
    }

    // MARK: - Internals

    /// The most children any row has.
    static func widestFamily(_ tree: TreeLayout) -> Int {
        var widest = 0
        for row in 0..<tree.count { widest = max(widest, tree.children(of: row).count) }
        return widest
    }

    /// Sum of a row, checking that it is a usable distribution.
    static func mass(of row: UnsafeBufferPointer<Float>, row index: Int?) throws -> Double {
        var sum: Double = 0
        var valid = true
        for p in row {
            valid = valid && p >= 0 && p.isFinite
            sum += Double(p)
        }
        guard valid, sum > 0 else {
            throw TokenTreeError(.invalidPrediction, input: index == nil ? "rootProbabilities" : "targetProbabilities",
                                 index: index, "the row has a negative or non-finite entry or sums to 0")
        }
        return sum
    }

    /// A uniform double in [0, 1) from the top 53 bits of one draw.
    @inline(__always)
    static func uniform(_ rng: inout some RandomNumberGenerator) -> Double {
        Double(rng.next() >> 11) * 0x1p-53
    }

    /// Draws a token from `row` without the sorted `excluded` tokens, whose remaining mass is
    /// `mass`.
    static func sample(
        _ row: UnsafeBufferPointer<Float>, excluding excluded: UnsafeBufferPointer<UInt32>, mass: Double,
        rng: inout some RandomNumberGenerator
    ) -> UInt32 {
        let target = uniform(&rng) * mass
        var cumulative: Double = 0
        var next = 0  // next excluded token to skip; tokens are scanned in ascending order
        var last = -1
        for token in row.indices {
            if next < excluded.count && Int(excluded[next]) == token {
                next += 1
                continue
            }
            let p = Double(row[token])
            guard p > 0 else { continue }
            cumulative += p
            last = token
            if target < cumulative { return UInt32(token) }
        }
        if last >= 0 { return UInt32(last) }  // rounding left the target at the top of the mass
        // Every token with mass was rejected, which only rounding makes possible (a child whose
        // token holds all the remaining mass is always accepted): the most probable token.
        var best = 0
        for token in row.indices where row[token] > row[best] { best = token }
        return UInt32(best)
    }
}

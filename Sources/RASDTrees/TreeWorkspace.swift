/// Reusable scratch memory for the per-step tree operations: pruning, fusion and layout.
///
/// Keep one workspace per decoder and pass output trees and layouts that live as long as it.
/// After the first steps have grown the buffers to the working size, a step of
///
/// ```swift
/// try workspace.prune(retrieval: retrieval, rootDistribution: row, topK: 8, into: &pruned)
/// try workspace.fuse(draft: draft, retrieval: pruned, budget: 64, into: &fused)
/// workspace.layout(fused, pendingToken: pending, into: &layout)
/// ```
///
/// allocates nothing (`rasd-index bench trees` counts the allocations). The one-shot
/// conveniences ``TokenTree/prune(retrieval:rootDistribution:topK:)``,
/// ``TokenTree/fuse(draft:retrieval:budget:)`` and ``TokenTree/layout(pendingToken:)`` do the
/// same with a fresh workspace.
///
/// A workspace is a value: a copy gets its own buffers when it is next used (copy on write).
public struct TreeWorkspace: @unchecked Sendable {
    // @unchecked: `storage` is a class, but every mutating entry point first makes it unique
    // (`prepare()`), so no two workspaces ever write the same storage, as with Array.

    /// The drafter's top-k at the root, for pruning against a dense distribution.
    var rootTop = TopTokens()
    var storage = Storage()

    /// An empty workspace; its buffers grow to the working size during the first steps.
    public init() {}

    /// Makes `storage` unique before a mutation and returns it.
    @inline(__always)
    mutating func prepare() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    /// The scratch buffers. Contents are meaningful only within one operation, except the
    /// fusion union and its table, which live from `startFusion` to `finishFusion`.
    final class Storage {
        /// Pruning: retrieval node -> pruned node, or -1 when cut.
        var pruneMap = ScratchArray<Int32>()

        /// Fusion: the union of the trees merged so far, in insertion order, with raw scores.
        var unionCount = 0
        var unionTokens = ScratchArray<UInt32>()
        var unionParents = ScratchArray<Int32>()
        var unionDepths = ScratchArray<Int32>()
        var unionScores = ScratchArray<Float>()
        var unionSources = ScratchArray<UInt8>()
        /// Fusion: node of the tree being merged -> union node.
        var mergeMap = ScratchArray<Int32>()
        /// Fusion: open-addressing table from (union parent + 1, token) to union node; empty
        /// slots hold `UInt64.max`, which no key reaches (parents stay below 2^16).
        var tableKeys = ScratchArray<UInt64>()
        var tableValues = ScratchArray<Int32>()
        var tableCapacity = 0
        var tableShift: UInt64 = 64
        /// Fusion: effective score of each union node (its score, capped by its ancestors').
        var effective = ScratchArray<Float>()
        /// Fusion: ranking keys (see `finishFusion`).
        var rankKeys = ScratchArray<UInt64>()
        /// Fusion: union node -> output node.
        var keptIndex = ScratchArray<Int32>()

        /// Layout: children of each parent slot (slot 0 the root, slot p + 1 node p).
        var childStart = ScratchArray<Int32>()
        var childList = ScratchArray<Int32>()
        /// Layout: tree nodes in breadth-first order.
        var order = ScratchArray<Int32>()
        /// Layout: tree node -> row.
        var rowOf = ScratchArray<Int32>()

        init() {}

        func copy() -> Storage {
            let other = Storage()
            other.pruneMap = pruneMap.copy()
            other.unionCount = unionCount
            other.unionTokens = unionTokens.copy()
            other.unionParents = unionParents.copy()
            other.unionDepths = unionDepths.copy()
            other.unionScores = unionScores.copy()
            other.unionSources = unionSources.copy()
            other.mergeMap = mergeMap.copy()
            other.tableKeys = tableKeys.copy()
            other.tableValues = tableValues.copy()
            other.tableCapacity = tableCapacity
            other.tableShift = tableShift
            other.effective = effective.copy()
            other.rankKeys = rankKeys.copy()
            other.keptIndex = keptIndex.copy()
            other.childStart = childStart.copy()
            other.childList = childList.copy()
            other.order = order.copy()
            other.rowOf = rowOf.copy()
            return other
        }
    }
}

extension Array {
    /// Sets the count to `count` without releasing storage; new elements are `fill`, kept
    /// elements keep their values. Allocates only when the capacity is too small.
    @inline(__always)
    mutating func resize(to count: Int, fill: Element) {
        if self.count > count {
            removeLast(self.count - count)
        } else if self.count < count {
            append(contentsOf: repeatElement(fill, count: count - self.count))
        }
    }
}

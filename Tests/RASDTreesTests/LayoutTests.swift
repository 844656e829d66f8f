import PropertyBased
import Testing
import RASDTrees

@Suite struct LayoutTests {
    /// For random trees, with and without a pending token: rows are breadth-first, every node
    /// appears once, the mask equals the brute-force ancestor relation, and offsets, children,
    /// leaves and paths agree with the tree.
    @Test func layoutMatchesBruteForce() async {
        let input = generator { rng -> (TokenTree, UInt32?) in
            let tree = randomDraft(&rng, vocabulary: 4, maxNodes: 150)
            return (tree, Bool.random(using: &rng) ? UInt32.random(in: 0..<4, using: &rng) : nil)
        }
        var workspace = TreeWorkspace()
        var layout = TreeLayout()
        await propertyCheck(count: 300, input: input) { (tree, pendingToken) in
            workspace.layout(tree, pendingToken: pendingToken, into: &layout)
            let pending = pendingToken == nil ? 0 : 1
            let rows = tree.count + pending
            #expect(layout.count == rows)
            #expect(layout.hasPendingToken == (pendingToken != nil))
            #expect(layout.tokens.count == rows && layout.parents.count == rows && layout.positions.count == rows)
            if let pendingToken {
                #expect(layout.tokens[0] == pendingToken && layout.parents[0] == -1 && layout.treeIndices[0] == -1)
            }
            // Every tree node exactly once, with its token; parents map to the parent's row.
            #expect(Set(layout.treeIndices.dropFirst(pending)) == Set(tree.tokens.indices.map(Int32.init)))
            var rowOf = [Int: Int]()
            for row in pending..<rows { rowOf[Int(layout.treeIndices[row])] = row }
            for row in pending..<rows {
                let node = Int(layout.treeIndices[row])
                #expect(layout.tokens[row] == tree.tokens[node])
                let parent = Int(tree.parents[node])
                #expect(Int(layout.parents[row]) == (parent < 0 ? pending - 1 : rowOf[parent]!))
                #expect(Int(layout.positions[row]) == Int(tree.depths[node]) - 1 + pending)
            }
            // Breadth-first: parents first, positions never decrease, siblings in tree order.
            for row in 0..<rows {
                #expect(Int(layout.parents[row]) < row)
                if row > 0 { #expect(layout.positions[row] >= layout.positions[row - 1]) }
            }
            // Children ranges.
            #expect(layout.childOffsets.count == rows + 1)
            #expect(layout.topLevelCount == layout.parents.filter { $0 < 0 }.count)
            for row in 0..<rows {
                let children = (0..<rows).filter { Int(layout.parents[$0]) == row }
                #expect(Array(layout.children(of: row)) == children)
                #expect(children.map { layout.treeIndices[$0] } == children.map { layout.treeIndices[$0] }.sorted())
            }
            // Mask against the ancestor relation.
            #expect(layout.maskWordsPerRow == (rows + 63) / 64)
            #expect(layout.mask.count == rows * layout.maskWordsPerRow)
            for row in 0..<rows {
                var ancestors = Set<Int>()
                var r = row
                while r >= 0 { ancestors.insert(r); r = Int(layout.parents[r]) }
                for column in 0..<rows where layout.attends(row: row, to: column) != ancestors.contains(column) {
                    Issue.record("mask[\(row)][\(column)] is wrong")
                }
            }
            // Leaves and their paths.
            let leaves = (0..<rows).filter { layout.children(of: $0).isEmpty }
            #expect(layout.leaves.map(Int.init) == leaves)
            #expect(layout.pathWidth == (rows == 0 ? 0 : Int(layout.positions.max()!) + 1))
            for (p, leaf) in leaves.enumerated() {
                var expected = [Int32](repeating: -1, count: layout.pathWidth)
                var r = leaf
                while r >= 0 { expected[Int(layout.positions[r])] = Int32(r); r = Int(layout.parents[r]) }
                #expect(Array(layout.paths[(p * layout.pathWidth)..<((p + 1) * layout.pathWidth)]) == expected)
            }
            #expect(tree.layout(pendingToken: pendingToken) == layout)
        }
    }

    @Test func emptyTree() {
        let withPending = TokenTree().layout(pendingToken: 3)
        #expect(withPending.tokens == [3] && withPending.parents == [-1] && withPending.mask == [1])
        #expect(withPending.leaves == [0] && withPending.paths == [0] && withPending.childOffsets == [1, 1])
        let bare = TokenTree().layout(pendingToken: nil)
        #expect(bare.count == 0 && bare.mask.isEmpty && bare.leaves.isEmpty && bare.childOffsets == [0])
    }
}

extension TreeWorkspace {
    /// Lays `tree` out for one verification pass (RASD step 5); see ``TreeLayout``.
    ///
    /// - Parameters:
    ///   - tree: the tree to verify, usually a fused tree.
    ///   - pendingToken: the last accepted (or bonus) token, whose KV the engine has not
    ///     computed yet; it becomes row 0 and every node hangs below it. Nil when the engine has
    ///     already computed it: the tree's top-level nodes then hang directly after the
    ///     committed context, and acceptance needs the root's prediction separately.
    ///   - layout: receives the layout; its storage is reused.
    public mutating func layout(_ tree: TokenTree, pendingToken: UInt32?, into layout: inout TreeLayout) {
        let s = prepare()
        let n = tree.count
        let pending = pendingToken == nil ? 0 : 1
        let rows = n + pending
        s.childStart.fill(n + 3, with: 0)
        s.childList.reserve(n)
        s.order.reserve(n)
        s.rowOf.reserve(n)
        let childStart = s.childStart.base, childList = s.childList.base, order = s.order.base, rowOf = s.rowOf.base
        var maxPosition: Int32 = 0

        tree.withNodes { tree in
            // Children of each parent slot (0 = root, p + 1 = node p), in tree order: a counting
            // sort whose counts sit two places up, so that after the prefix sum
            // childStart[s + 1] is the fill cursor of slot s and ends as its end.
            for i in 0..<n { childStart[Int(tree.parents[i]) + 3] += 1 }
            for slot in 1..<(n + 3) { childStart[slot] += childStart[slot - 1] }
            for i in 0..<n {
                let cursor = Int(tree.parents[i]) + 2
                childList[Int(childStart[cursor])] = Int32(i)
                childStart[cursor] += 1
            }
            // Now the children of slot s are childList[childStart[s] ..< childStart[s + 1]].

            // Breadth-first order: a queue over `order` itself.
            var tail = 0
            for k in Int(childStart[0])..<Int(childStart[1]) {
                order[tail] = childList[k]
                tail += 1
            }
            var head = 0
            while head < tail {
                let node = Int(order[head])
                rowOf[node] = Int32(head + pending)
                head += 1
                for k in Int(childStart[node + 1])..<Int(childStart[node + 2]) {
                    order[tail] = childList[k]
                    tail += 1
                }
            }

            layout.withWritableRows(count: rows) { out in
                if let pendingToken {
                    out.tokens[0] = pendingToken
                    out.parents[0] = -1
                    out.positions[0] = 0
                    out.treeIndices[0] = -1
                }
                let topLevelParent: Int32 = pending == 1 ? 0 : -1
                for k in 0..<n {
                    let node = Int(order[k])
                    let row = k + pending
                    let parent = Int(tree.parents[node])
                    out.tokens[row] = tree.tokens[node]
                    out.parents[row] = parent < 0 ? topLevelParent : rowOf[parent]
                    let position = tree.depths[node] - 1 + Int32(pending)
                    out.positions[row] = position
                    maxPosition = max(maxPosition, position)
                    out.treeIndices[row] = Int32(node)
                }
                // Children of a row are contiguous and follow their parents' row order.
                var cursor = Int32(pending == 1 ? 1 : childStart[1])
                for row in 0..<rows {
                    out.childOffsets[row] = cursor
                    let slot = row < pending ? 0 : Int(order[row - pending]) + 1
                    cursor += childStart[slot + 1] - childStart[slot]
                }
                out.childOffsets[rows] = cursor
            }
        }
        layout.hasPendingToken = pendingToken != nil
        layout.topLevelCount = pending == 1 ? 1 : Int(childStart[1])

        // Ancestor mask: a row's bits are its parent's plus its own.
        let words = (rows + 63) / 64
        layout.maskWordsPerRow = words
        layout.mask.resize(to: rows * words, fill: 0)
        layout.parents.withUnsafeBufferPointer { parents in
            layout.mask.withUnsafeMutableBufferPointer { mask in
                mask.update(repeating: 0)
                for row in 0..<rows {
                    let parent = Int(parents[row])
                    if parent >= 0 {
                        for w in 0...(parent >> 6) { mask[row * words + w] = mask[parent * words + w] }
                    }
                    mask[row * words + row >> 6] |= 1 << UInt64(row & 63)
                }
            }
        }

        // Leaves and their root-to-leaf paths.
        layout.leaves.removeAll(keepingCapacity: true)
        for row in 0..<rows where layout.childOffsets[row] == layout.childOffsets[row + 1] {
            layout.leaves.append(Int32(row))
        }
        let width = rows == 0 ? 0 : Int(maxPosition) + 1
        layout.pathWidth = width
        layout.paths.resize(to: layout.leaves.count * width, fill: -1)
        layout.parents.withUnsafeBufferPointer { parents in
            layout.positions.withUnsafeBufferPointer { positions in
                layout.leaves.withUnsafeBufferPointer { leaves in
                    layout.paths.withUnsafeMutableBufferPointer { paths in
                        paths.update(repeating: -1)
                        for (p, leaf) in leaves.enumerated() {
                            var row = Int(leaf)
                            while row >= 0 {
                                paths[p * width + Int(positions[row])] = Int32(row)
                                row = Int(parents[row])
                            }
                        }
                    }
                }
            }
        }
    }
}

extension TokenTree {
    /// This tree laid out for verification; see ``TreeWorkspace/layout(_:pendingToken:into:)``.
    /// Allocates; a decode loop uses a ``TreeWorkspace``.
    public func layout(pendingToken: UInt32?) -> TreeLayout {
        var workspace = TreeWorkspace()
        var layout = TreeLayout()
        workspace.layout(self, pendingToken: pendingToken, into: &layout)
        return layout
    }
}

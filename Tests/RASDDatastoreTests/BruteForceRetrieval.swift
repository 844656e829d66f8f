import RASDTrees

/// The retrieval semantics computed the slow, obvious way, as the oracle for the index.
///
/// Longest suffix of the context (maxMatch down to minMatch) occurring inside a document; every
/// occurrence contributes its continuation (up to continuationLength tokens, stopping at the
/// document end); every continuation prefix is counted; nodes are chosen greedily in the
/// documented order: count descending, depth ascending, parent's output index ascending, token ascending.
struct BruteForceRetrieval {
    let documents: [[UInt32]]

    func retrieve(_ context: [UInt32], _ p: RetrievalParameters = RetrievalParameters()) -> CandidateTrie {
        var length = min(p.maxMatch, context.count)
        var starts: [(doc: Int, end: Int)] = []
        while length >= p.minMatch {
            let pattern = Array(context.suffix(length))
            starts = []
            for (d, doc) in documents.enumerated() where doc.count >= length {
                for i in 0...(doc.count - length) where doc[i..<(i + length)].elementsEqual(pattern) {
                    starts.append((d, i + length))
                }
            }
            if !starts.isEmpty { break }
            length -= 1
        }
        guard length >= p.minMatch, !starts.isEmpty else { return .empty }
        var counts: [[UInt32]: Int] = [:]
        for (d, end) in starts {
            let doc = documents[d]
            let stop = min(doc.count, end + p.continuationLength)
            if end < stop {
                for j in (end + 1)...stop { counts[Array(doc[end..<j]), default: 0] += 1 }
            }
        }
        var out = CandidateTrie(matchLength: length, occurrences: starts.count, tokens: [], parents: [], counts: [])
        var indexOf: [[UInt32]: Int32] = [:]
        var remaining = counts
        while out.count < p.maxNodes {
            var best: (path: [UInt32], count: Int, parent: Int32)?
            for (path, count) in remaining {
                let parent: Int32
                if path.count == 1 { parent = -1 } else if let q = indexOf[Array(path.dropLast())] { parent = q } else { continue }
                if let b = best {
                    let better =
                        count != b.count ? count > b.count
                        : path.count != b.path.count ? path.count < b.path.count
                        : parent != b.parent ? parent < b.parent : path.last! < b.path.last!
                    if !better { continue }
                }
                best = (path, count, parent)
            }
            guard let chosen = best else { break }
            indexOf[chosen.path] = Int32(out.count)
            out.tokens.append(chosen.path.last!)
            out.parents.append(chosen.parent)
            out.counts.append(UInt32(chosen.count))
            remaining[chosen.path] = nil
        }
        return out
    }
}

import Foundation

/// What `verify` checked and what it found.
public struct VerificationReport: Sendable {
    /// Problems found, each naming the part of the datastore concerned. Empty when all is well.
    public var problems: [String] = []
    /// Stored values whose checksums were recomputed.
    public var valuesChecked = 0
    /// Bytes hashed.
    public var bytesChecked = 0
    /// Rows of the index walked and compared with the stored text.
    public var rowsWalked = 0

    /// True when nothing is wrong.
    public var isClean: Bool { problems.isEmpty }
}

extension Datastore {
    /// Re-checks the whole datastore: every checksum, the rank counters of every level, the node
    /// table, and — by walking the index backwards from sampled anchors and comparing every symbol
    /// with the stored text — that the index still describes the sorted suffixes of that text.
    ///
    /// - Parameters:
    ///   - walkSteps: symbols walked from each anchor; `nil` walks each shard's whole text from its end.
    ///   - progress: receives a line per stage.
    public func verify(walkSteps: Int? = 4096, progress: ((String) -> Void)? = nil) -> VerificationReport {
        var report = VerificationReport()
        let reader = TableReader(txn: transaction, path: path)
        guard let checksums = try? reader.checksums() else {
            report.problems.append("rasd/checksums is missing or damaged: nothing can be verified")
            return report
        }

        // 1. Checksums of every value, and no value without one.
        let keys = (try? transaction.keys()) ?? []
        for key in keys where key != Keys.checksums {
            guard let expected = checksums.values[key] else {
                report.problems.append("\(key) has no checksum (a value that no build wrote)")
                continue
            }
            guard var bytes = try? transaction.get(key) else {
                report.problems.append("\(key) cannot be read")
                continue
            }
            if key.hasSuffix("/blocks"), bytes.count >= Layout.alignmentPad {
                bytes = UnsafeRawBufferPointer(rebasing: bytes[Layout.alignmentPad...])
            }
            let actual = BinaryTables.chunkDigests(bytes, chunk: checksums.chunkBytes)
            if actual != expected {
                let bad = zip(actual, expected).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
                let place = bad.isEmpty ? "its length changed" : "bytes \(bad[0] * checksums.chunkBytes)..<\((bad[0] + 1) * checksums.chunkBytes) differ"
                report.problems.append("\(key) fails its checksum: \(place)")
            }
            report.valuesChecked += 1
            report.bytesChecked += bytes.count
        }
        for key in checksums.values.keys where !keys.contains(key) {
            report.problems.append("\(key) is missing")
        }
        progress?("checksums: \(report.valuesChecked) values, \(report.bytesChecked) bytes")

        // 2. Rank counters and node tables, 3. the index against the text.
        for (k, shard) in shards.enumerated() {
            report.problems += checkCounters(shard, k)
            report.problems += checkNodes(shard, k)
            progress?("shard \(k): rank counters and node table checked")
            let (walked, problems) = walk(shard, k, steps: walkSteps)
            report.rowsWalked += walked
            report.problems += problems
            progress?("shard \(k): walked \(walked) rows against the stored text")
        }
        return report
    }

    /// Every block's counters must equal the counts of the nibbles before it.
    private func checkCounters(_ shard: Shard, _ k: Int) -> [String] {
        var problems: [String] = []
        for (d, level) in shard.levels.enumerated() {
            var running = [Int](repeating: 0, count: 16)
            var expected = [Int](repeating: 0, count: 16)
            let blocks = NibbleSequence.blockCount(for: level.count)
            var i = 0
            for b in 0..<blocks {
                let start = b * NibbleSequence.blockPositions
                expected.withUnsafeMutableBufferPointer { level.histogram(start, into: $0.baseAddress.unsafelyUnwrapped) }
                if expected != running {
                    problems.append("shard \(k) level \(d): the counters of block \(b) do not match its nibbles")
                    break
                }
                let end = min(level.count, start + NibbleSequence.blockPositions)
                while i < end { running[level.nibble(i)] += 1; i += 1 }
            }
        }
        return problems
    }

    /// Node segments must add up and the stored ranks at their starts must be right.
    private func checkNodes(_ shard: Shard, _ k: Int) -> [String] {
        for v in 0..<code.nodeCount {
            let level = shard.levels[Int(code.depth[v])]
            var sum = 0
            for x in 0..<16 {
                let child = code.children[v * 16 + x]
                if child == SymbolCode.empty { continue }
                if Int(shard.rankAtStart[v * 16 + x]) != level.rank(x, Int(shard.levelStart[v])) {
                    return ["shard \(k): node \(v) has a wrong rank at its start"]
                }
                sum += child >= 0 ? Int(shard.nodeLength[Int(child)]) : Int(shard.firstRow[Int(~child) + 1] - shard.firstRow[Int(~child)])
            }
            if sum != Int(shard.nodeLength[v]) { return ["shard \(k): node \(v)'s children do not add up to its length"] }
        }
        return []
    }

    /// Walks the BWT backwards (LF mapping) from anchors whose text position is known and
    /// compares every symbol met with the stored text.
    private func walk(_ shard: Shard, _ k: Int, steps: Int?) -> (Int, [String]) {
        guard let text = try? ShardText(transaction: transaction, shard: k, path: path) else {
            return (0, ["shard \(k): the stored text or document table cannot be read"])
        }
        let n = shard.rows - 1
        var starts: [(row: Int, position: Int)] = []
        if steps == nil {
            starts = [(0, n)]  // row 0 is the empty suffix at the end of the reversed text
        } else if let bytes = try? transaction.get(Keys.anchors(k)) {
            let values = BinaryTables.values(UInt32.self, from: bytes, count: bytes.count / 4)
            for i in stride(from: 0, to: values.count - 1, by: 2) { starts.append((Int(values[i]), Int(values[i + 1]))) }
            if starts.isEmpty { starts = [(0, n)] }
        }
        var walked = 0
        for anchor in starts {
            var row = anchor.row, position = anchor.position
            let limit = steps ?? n
            var step = 0
            while position > 0 && step < limit {
                guard let (symbol, rank) = access(shard, row: row) else {
                    return (walked, ["shard \(k): the index leads outside itself at row \(row)"])
                }
                // Row `row` is the suffix at `position` of the reversed text; its BWT symbol is
                // the one before it, which is the text symbol at n - position (reading forwards).
                guard let stored = text.symbol(at: n - position) else {
                    return (walked, ["shard \(k): the stored text ends early"])
                }
                if symbol != stored {
                    return (walked, ["shard \(k): row \(row) holds symbol \(symbol) but the text has \(stored) there (the index and the text disagree)"])
                }
                row = Int(shard.firstRow[symbol]) + rank
                position -= 1
                step += 1
                walked += 1
            }
        }
        return (walked, [])
    }

    /// The BWT symbol at `row` and its rank among equal symbols before it.
    private func access(_ shard: Shard, row: Int) -> (Int, Int)? {
        var node = 0, i = row
        while true {
            let depth = Int(code.depth[node])
            let level = shard.levels[depth]
            let position = Int(shard.levelStart[node]) + i
            guard i < Int(shard.nodeLength[node]), position < level.count else { return nil }
            let x = level.nibble(position)
            i = shard.rank(node: node, depth: depth, nibble: x, i)
            guard i >= 0 else { return nil }
            let child = code.children[node * 16 + x]
            if child == SymbolCode.empty { return nil }
            if child < 0 { return (Int(~child), i) }
            node = Int(child)
        }
    }
}

/// A shard's stored text, decompressed chunk by chunk, as the symbols the index was built from
/// (tokens + 2, with a document boundary after every document).
struct ShardText {
    let chunks: [UnsafeRawBufferPointer]
    let documentStarts: [Int]
    let tokens: Int
    let width: Int
    let path: String
    private let cache = ChunkCache()

    init(transaction: LMDBReadTransaction, shard k: Int, path: String) throws {
        self.path = path
        guard let metaBytes = try transaction.get(Keys.meta(k)),
            let meta = try? JSONDecoder().decode(ShardMeta.self, from: Data(metaBytes)),
            let docs = try transaction.get(Keys.documents(k)),
            let header = try transaction.get(Keys.header),
            let h = try? JSONDecoder().decode(DatastoreHeader.self, from: Data(header))
        else { throw DatastoreError(.corrupt, path: path, "shard \(k) metadata is unreadable") }
        let raw = try Zstd.decompress(docs, limit: meta.documents * 8, what: Keys.documents(k))
        documentStarts = raw.withUnsafeBytes { BinaryTables.values(UInt64.self, from: $0, count: meta.documents).map { Int($0) } }
        tokens = meta.tokens
        width = h.tokenWidth / 8
        chunks = try (0..<meta.textChunks).map { c in
            guard let bytes = try transaction.get(Keys.text(k, c)) else { throw DatastoreError(.corrupt, path: path, "\(Keys.text(k, c)) is missing") }
            return bytes
        }
    }

    /// The symbol at `position` of the shard's text (tokens and boundaries in document order).
    func symbol(at position: Int) -> Int? {
        // Documents before `d` contributed one boundary each: find the document of this position.
        var lo = 0, hi = documentStarts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if documentStarts[mid] + mid <= position { lo = mid + 1 } else { hi = mid }
        }
        let d = lo - 1
        guard d >= 0 else { return nil }
        let token = position - d  // tokens before this position
        let documentEnd = (d + 1 < documentStarts.count ? documentStarts[d + 1] : tokens)
        if token == documentEnd { return Alphabet.documentBoundary }
        guard token < tokens, let chunk = cache.chunk(token / DatastoreBuilder.chunkTokens, from: chunks, width: width) else { return nil }
        let offset = token % DatastoreBuilder.chunkTokens
        guard offset * width + width <= chunk.count else { return nil }
        let id = width == 2
            ? Int(UInt16(littleEndian: chunk.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset * 2, as: UInt16.self) }))
            : Int(UInt32(littleEndian: chunk.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset * 4, as: UInt32.self) }))
        return id + Alphabet.firstToken
    }
}

/// The last few decompressed text chunks.
final class ChunkCache {
    private var entries: [(index: Int, bytes: [UInt8])] = []

    func chunk(_ index: Int, from chunks: [UnsafeRawBufferPointer], width: Int) -> [UInt8]? {
        if let hit = entries.first(where: { $0.index == index }) { return hit.bytes }
        guard index < chunks.count,
            let bytes = try? Zstd.decompress(chunks[index], limit: DatastoreBuilder.chunkTokens * width, what: "text chunk \(index)")
        else { return nil }
        entries.append((index, bytes))
        if entries.count > 4 { entries.removeFirst() }
        return bytes
    }
}

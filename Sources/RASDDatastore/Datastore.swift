import Foundation
import RASDTrees

/// An open, read-only datastore: retrieval of candidate continuations for a context.
///
/// Opening maps the LMDB environment and keeps one read transaction open for the life of the
/// object, so every query reads the index in place from the map (zero copy). Any number of
/// processes may open the same datastore; queries may run concurrently from many threads.
public final class Datastore: Sendable {
    /// Where the datastore lives.
    public let path: String
    /// Its header.
    public let header: DatastoreHeader

    let shards: [Shard]
    let code: SymbolCode
    /// Code of every symbol: nibbles (first in the low bits) and length.
    let codeNibbles: [UInt32]
    let codeLengths: [UInt8]
    let transaction: LMDBReadTransaction
    /// Copies of tables whose stored bytes were not aligned for direct use.
    private let ownedTables: OwnedTables

    /// How much of the stored bytes opening re-checks against their checksums.
    public enum OpenVerification: Sendable {
        /// Every byte (the default; costs one SHA-256 pass over the file, about 0.1 s per 100 MB).
        case checksums
        /// Only the small tables; for callers that verified the datastore before (`verify()`).
        case smallTables
    }

    /// Opens the datastore at `path`.
    ///
    /// Checks the header, the format version, the code tree, every table's size and, by default,
    /// every checksum, so a damaged datastore is refused instead of giving wrong answers.
    /// `verify()` additionally checks the index against its stored text.
    /// - Parameters:
    ///   - expectedTokenizer: when given, a datastore built with another tokenizer is refused.
    ///   - verification: how much to re-check while opening.
    public init(path: String, expectedTokenizer: TokenizerIdentity? = nil, verification: OpenVerification = .checksums) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatastoreError(.notFound, path: path, "no datastore here")
        }
        guard isDirectory.boolValue, FileManager.default.fileExists(atPath: path + "/data.mdb") else {
            throw DatastoreError(.notADatastore, path: path, "not a datastore directory (no data.mdb)")
        }
        let environment = try LMDBEnvironment(path: path, readOnly: true)
        let txn = try LMDBReadTransaction(environment)
        transaction = txn

        guard let headerBytes = try txn.get(Keys.header) else {
            throw DatastoreError(.notADatastore, path: path, "an LMDB environment without a rasd header")
        }
        let header: DatastoreHeader
        do {
            header = try JSONDecoder().decode(DatastoreHeader.self, from: Data(headerBytes))
        } catch {
            // Tell a newer format apart from garbage: a newer writer may add or change fields.
            if let object = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
                object["format"] as? String == DatastoreHeader.formatName,
                let version = object["formatVersion"] as? Int, version > DatastoreHeader.currentFormatVersion
            {
                throw DatastoreError(.newerFormat, path: path, "format version \(version) is newer than this rasd reads (\(DatastoreHeader.currentFormatVersion))")
            }
            throw DatastoreError(.notADatastore, path: path, "the header is not a rasd datastore header")
        }
        guard header.format == DatastoreHeader.formatName else {
            throw DatastoreError(.notADatastore, path: path, "header format is \"\(header.format)\", not a rasd datastore")
        }
        guard header.formatVersion <= DatastoreHeader.currentFormatVersion else {
            throw DatastoreError(.newerFormat, path: path, "format version \(header.formatVersion) is newer than this rasd reads (\(DatastoreHeader.currentFormatVersion))")
        }
        guard header.formatVersion >= 1, header.shards >= 1, header.vocabularySize >= 1, header.tokenWidth == 16 || header.tokenWidth == 32 else {
            throw DatastoreError(.corrupt, path: path, "the header has impossible values")
        }
        if let expected = expectedTokenizer, let actual = header.tokenizer, expected.fingerprint != actual.fingerprint {
            throw DatastoreError(
                .tokenizerMismatch, path: path,
                "built with tokenizer \(actual), but the caller uses \(expected)")
        }
        self.header = header

        let reader = TableReader(txn: txn, path: path)
        let checksums = try reader.checksums()
        let code = try BinaryTables.decodeCode(try reader.table(Keys.tree, checksums: checksums), path: path)
        guard code.symbolCount == Alphabet.symbolCount(vocabularySize: header.vocabularySize) else {
            throw DatastoreError(.corrupt, path: path, "the code tree does not match the vocabulary size")
        }
        self.code = code
        (codeNibbles, codeLengths) = code.codes()

        let owned = OwnedTables()
        var shards: [Shard] = []
        for k in 0..<header.shards {
            shards.append(try reader.shard(k, code: code, checksums: checksums, owned: owned, verifyLevels: verification == .checksums))
        }
        guard shards.reduce(0, { $0 + $1.rows - 1 }) == header.tokens + header.documents else {
            throw DatastoreError(.corrupt, path: path, "the shards do not add up to the header's token and document counts")
        }
        self.shards = shards
        self.ownedTables = owned
    }

    /// Every stored value's key and size in bytes, in key order.
    public func storedValues() throws -> [(key: String, bytes: Int)] {
        try transaction.keys().map { key in (key, try transaction.get(key)?.count ?? 0) }
    }

    /// Sizes and parameters, for `rasd-index info`.
    public var info: DatastoreInfo {
        let files = ["data.mdb", "lock.mdb"].map { path + "/" + $0 }
        let bytes = files.reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
        }
        return DatastoreInfo(header: header, bytesOnDisk: bytes)
    }
}

/// What `rasd-index info` shows.
public struct DatastoreInfo: Sendable, Codable, Equatable {
    /// The header.
    public var header: DatastoreHeader
    /// Bytes of the data and lock files.
    public var bytesOnDisk: Int
    /// Bytes on disk per token.
    public var bytesPerToken: Double { Double(bytesOnDisk) / Double(max(1, header.tokens)) }

    enum CodingKeys: String, CodingKey { case header, bytesOnDisk, bytesPerToken }

    public init(header: DatastoreHeader, bytesOnDisk: Int) {
        self.header = header
        self.bytesOnDisk = bytesOnDisk
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        header = try c.decode(DatastoreHeader.self, forKey: .header)
        bytesOnDisk = try c.decode(Int.self, forKey: .bytesOnDisk)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(header, forKey: .header)
        try c.encode(bytesOnDisk, forKey: .bytesOnDisk)
        try c.encode(bytesPerToken, forKey: .bytesPerToken)
    }
}

/// Heap copies of small tables that were not aligned in the map; freed with the datastore.
final class OwnedTables: @unchecked Sendable {
    // @unchecked: filled once while opening, read-only afterwards.
    private var buffers: [UnsafeMutableRawBufferPointer] = []

    /// `bytes` itself when aligned to `alignment`, else an aligned copy kept alive here.
    func aligned(_ bytes: UnsafeRawBufferPointer, alignment: Int) -> UnsafeRawPointer {
        if let base = bytes.baseAddress, Int(bitPattern: base) % alignment == 0 { return base }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: max(alignment, 8))
        copy.copyMemory(from: bytes)
        buffers.append(copy)
        return UnsafeRawPointer(copy.baseAddress.unsafelyUnwrapped)
    }

    deinit { for b in buffers { b.deallocate() } }
}

/// Reads and checks the tables of one datastore while opening it.
struct TableReader {
    let txn: LMDBReadTransaction
    let path: String

    func checksums() throws -> ChecksumTable {
        guard let bytes = try txn.get(Keys.checksums) else {
            throw DatastoreError(.corrupt, path: path, "the checksum table is missing")
        }
        guard let table = try? JSONDecoder().decode(ChecksumTable.self, from: Data(bytes)), table.algorithm == "sha256",
            table.chunkBytes > 0
        else {
            throw DatastoreError(.corrupt, path: path, "the checksum table is damaged")
        }
        return table
    }

    /// A stored value; `verified` checks its checksum now (done for every small table).
    func table(_ key: String, checksums: ChecksumTable, verified: Bool = true, align64: Bool = false) throws -> UnsafeRawBufferPointer {
        guard var bytes = try txn.get(key) else {
            throw DatastoreError(.corrupt, path: path, "\(key) is missing")
        }
        if align64 {
            guard bytes.count >= Layout.alignmentPad else { throw DatastoreError(.corrupt, path: path, "\(key) is truncated") }
            bytes = UnsafeRawBufferPointer(rebasing: bytes[Layout.alignmentPad...])
        }
        if verified {
            guard let expected = checksums.values[key] else {
                throw DatastoreError(.corrupt, path: path, "\(key) has no checksum")
            }
            guard BinaryTables.chunkDigests(bytes, chunk: checksums.chunkBytes) == expected else {
                throw DatastoreError(.corrupt, path: path, "\(key) fails its checksum")
            }
        }
        return bytes
    }

    func shard(_ k: Int, code: SymbolCode, checksums: ChecksumTable, owned: OwnedTables, verifyLevels: Bool) throws -> Shard {
        let metaBytes = try table(Keys.meta(k), checksums: checksums)
        guard let meta = try? JSONDecoder().decode(ShardMeta.self, from: Data(metaBytes)), meta.rows >= 2,
            meta.rows == meta.tokens + meta.documents + 1, meta.rows < Int(UInt32.max)
        else {
            throw DatastoreError(.corrupt, path: path, "\(Keys.meta(k)) is damaged")
        }
        let symbols = code.symbolCount
        let firstRows = try table(Keys.firstRows(k), checksums: checksums)
        guard firstRows.count == (symbols + 1) * 4 else { throw sizeError(Keys.firstRows(k)) }
        let firstRow = owned.aligned(firstRows, alignment: 4).assumingMemoryBound(to: UInt32.self)
        guard firstRow[symbols] == UInt32(meta.rows) else {
            throw DatastoreError(.corrupt, path: path, "\(Keys.firstRows(k)) does not add up to the shard's rows")
        }
        let nodes = code.nodeCount
        let nodeBytes = try table(Keys.nodes(k), checksums: checksums)
        guard nodeBytes.count == nodes * 18 * 4 else { throw sizeError(Keys.nodes(k)) }
        let nodeTable = owned.aligned(nodeBytes, alignment: 4).assumingMemoryBound(to: UInt32.self)
        let depthCount = Int(code.depth.max() ?? 0) + 1
        guard meta.levelLengths.count == depthCount else { throw sizeError(Keys.meta(k)) }
        var levels: [NibbleSequence] = []
        for d in 0..<depthCount {
            let n = meta.levelLengths[d]
            guard n >= 0, n <= meta.rows * SymbolCode.maxLength else { throw sizeError(Keys.meta(k)) }
            let blocks = try table(Keys.levelBlocks(k, d), checksums: checksums, verified: verifyLevels, align64: true)
            guard blocks.count == NibbleSequence.blockCount(for: n) * NibbleSequence.blockBytes else { throw sizeError(Keys.levelBlocks(k, d)) }
            let supers = try table(Keys.levelSupers(k, d), checksums: checksums)
            guard supers.count == NibbleSequence.superCount(for: n) * 64 else { throw sizeError(Keys.levelSupers(k, d)) }
            levels.append(
                NibbleSequence(
                    count: n, blocks: owned.aligned(blocks, alignment: 64),
                    supers: owned.aligned(supers, alignment: 4).assumingMemoryBound(to: UInt32.self)))
        }
        // Every node segment must lie inside its level.
        let levelStart = nodeTable, nodeLength = nodeTable + nodes
        for v in 0..<nodes {
            let d = Int(code.depth[v])
            guard Int(levelStart[v]) + Int(nodeLength[v]) <= meta.levelLengths[d] else {
                throw DatastoreError(.corrupt, path: path, "\(Keys.nodes(k)): node \(v) lies outside its level")
            }
        }
        guard Int(nodeLength[0]) == meta.rows else {
            throw DatastoreError(.corrupt, path: path, "\(Keys.nodes(k)): the root does not cover the shard")
        }
        return Shard(
            rows: meta.rows, firstRow: firstRow, levels: levels, levelStart: levelStart,
            rankAtStart: nodeTable + 2 * nodes, nodeLength: nodeLength)
    }

    private func sizeError(_ key: String) -> DatastoreError {
        DatastoreError(.corrupt, path: path, "\(key) has the wrong size")
    }
}

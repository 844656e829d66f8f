import Dispatch
import Foundation

/// Options of a datastore build.
public struct BuildOptions: Sendable {
    /// Directory of the datastore to create.
    public var output: String
    /// Vocabulary size; every token id must be below it.
    public var vocabularySize: Int
    /// The tokenizer that produced the tokens, recorded in the header when given.
    public var tokenizer: TokenizerIdentity?
    /// Most tokens per shard. A shard is built in memory (about 9 bytes per token at peak), so this
    /// bounds the build's memory; queries merge shards.
    public var shardTokens: Int
    /// Threads to use.
    public var threads: Int
    /// Replace an existing datastore at `output`.
    public var force: Bool
    /// Human description of the input, recorded in the header.
    public var source: String

    /// The largest shard: suffix sorting uses 32-bit positions.
    public static let maximumShardTokens = Int(Int32.max) - 1024

    /// Creates options; `shardTokens` defaults to 256 M tokens (about 2.3 GB of memory at peak).
    public init(
        output: String, vocabularySize: Int, tokenizer: TokenizerIdentity? = nil, shardTokens: Int = 256 << 20,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount, force: Bool = false, source: String = ""
    ) {
        self.output = output
        self.vocabularySize = vocabularySize
        self.tokenizer = tokenizer
        self.shardTokens = shardTokens
        self.threads = threads
        self.force = force
        self.source = source
    }
}

/// Builds a datastore from documents of token ids.
///
/// Documents are added one at a time (`add(document:)`) by any producer: a pre-tokenized file, a
/// tokenizer reading a corpus. When a shard is full its index is built and written; `finish()`
/// writes the header and moves the complete datastore into place in one atomic rename. Until then
/// everything lives in a hidden sibling directory, so an interrupted or failed build never leaves
/// a partial datastore at `output` and never touches the one that was there.
public final class DatastoreBuilder {
    public let options: BuildOptions
    private let symbolCount: Int
    private let narrow: Bool
    private let workDirectory: String
    private var environment: LMDBEnvironment?
    private let startTime = Date()

    // Current shard.
    private var text16 = GrowableBuffer<UInt16>()
    private var text32 = GrowableBuffer<UInt32>()
    private var shardTokens = 0
    private var shardDocumentStarts: [UInt64] = []
    private var counts: [UInt64]
    private let compressor = ChunkCompressor()
    private var chunkTextStart = 0
    private var chunkTokenCount = 0

    // Whole datastore.
    private var code: SymbolCode?
    private var shardCount = 0
    private var totalTokens = 0
    private var totalDocuments = 0
    private var manifest: [ManifestEntry] = []
    private var checksums: [String: [String]] = [:]
    private var finished = false

    /// Tokens per zstd text chunk.
    static let chunkTokens = 1 << 20
    /// Checksum granularity.
    static let checksumChunkBytes = 1 << 20

    /// Prepares a build; fails early when the output exists (without `force`) or cannot be written.
    public init(options: BuildOptions) throws {
        guard options.vocabularySize >= 1, options.vocabularySize <= Int(UInt32.max) - 2 else {
            throw DatastoreError(.invalidArgument, path: options.output, "vocabulary size \(options.vocabularySize) is out of range")
        }
        guard options.shardTokens >= 1, options.shardTokens <= BuildOptions.maximumShardTokens else {
            throw DatastoreError(.invalidArgument, path: options.output, "shard size must be between 1 and \(BuildOptions.maximumShardTokens) tokens")
        }
        self.options = options
        symbolCount = Alphabet.symbolCount(vocabularySize: options.vocabularySize)
        narrow = symbolCount <= 1 << 16
        counts = [UInt64](repeating: 0, count: symbolCount)

        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: options.output, isDirectory: &isDirectory) {
            guard options.force else {
                throw DatastoreError(.alreadyExists, path: options.output, "a datastore (or file) already exists here")
            }
            guard isDirectory.boolValue else {
                throw DatastoreError(.alreadyExists, path: options.output, "this is a file, not a datastore directory; remove it first")
            }
        }
        let url = URL(fileURLWithPath: options.output).standardizedFileURL
        let parent = url.deletingLastPathComponent().path
        try AtomicDirectory.createParent(parent)
        AtomicDirectory.removeStalePartials(in: parent, name: url.lastPathComponent)
        workDirectory = try AtomicDirectory.makePartial(in: parent, name: url.lastPathComponent)
        do {
            environment = try LMDBEnvironment(path: workDirectory, readOnly: false, mapSize: 1 << 30)
        } catch {
            try? fm.removeItem(atPath: workDirectory)
            throw error
        }
    }

    deinit {
        if !finished { cancel() }
    }

    /// Abandons the build and removes its work directory. The previous datastore, if any, is untouched.
    public func cancel() {
        _ = try? compressor.finish()
        environment = nil
        text16.release()
        text32.release()
        try? FileManager.default.removeItem(atPath: workDirectory)
        finished = true
    }

    /// Records a corpus source in the manifest.
    public func addManifestEntry(_ entry: ManifestEntry) {
        manifest.append(entry)
    }

    /// Adds one document. Empty documents are kept (they count as documents but add no tokens).
    /// - Throws: ``DatastoreError`` `.tokenOutOfRange` naming the document and position.
    public func add<C: Collection>(document: C) throws where C.Element == UInt32 {
        let length = document.count
        if shardTokens > 0 && shardTokens + length > options.shardTokens { try finishShard() }
        guard length <= options.shardTokens else {
            throw DatastoreError(
                .invalidArgument, path: options.output,
                "document \(totalDocuments) has \(length) tokens, more than the shard size \(options.shardTokens); raise --shard-tokens")
        }
        let vocabulary = UInt32(options.vocabularySize)
        var position = 0
        for token in document {
            guard token < vocabulary else {
                throw DatastoreError(
                    .tokenOutOfRange, path: options.source.isEmpty ? options.output : options.source,
                    "document \(totalDocuments) has token id \(token) at position \(position), not below the vocabulary size \(vocabulary)")
            }
            position += 1
        }
        shardDocumentStarts.append(UInt64(shardTokens))
        for token in document {
            let symbol = Alphabet.symbol(token: token)
            counts[symbol] += 1
            if narrow { text16.append(UInt16(truncatingIfNeeded: symbol)) } else { text32.append(UInt32(symbol)) }
            shardTokens += 1
            chunkTokenCount += 1
            if chunkTokenCount == Self.chunkTokens { compressChunk(textEnd: textCount) }
        }
        if narrow { text16.append(UInt16(Alphabet.documentBoundary)) } else { text32.append(UInt32(Alphabet.documentBoundary)) }
        counts[Alphabet.documentBoundary] += 1
        totalDocuments += 1
        totalTokens += length
    }

    /// Compresses the current chunk (text-buffer positions `chunkTextStart..<textEnd`) in the background.
    ///
    /// The text buffer grows by `realloc`, which may move it, so the chunk's token ids are copied
    /// out (without document boundaries) before the background job starts.
    private func compressChunk(textEnd: Int) {
        let width = narrow ? 2 : 4
        var tokens = [UInt8]()
        tokens.reserveCapacity(chunkTokenCount * width)
        for index in chunkTextStart..<textEnd {
            let symbol = narrow ? Int(text16.buffer[index]) : Int(text32.buffer[index])
            if symbol == Alphabet.documentBoundary { continue }
            let token = Alphabet.token(symbol: symbol)
            if narrow {
                withUnsafeBytes(of: UInt16(truncatingIfNeeded: token).littleEndian) { tokens += $0 }
            } else {
                withUnsafeBytes(of: token.littleEndian) { tokens += $0 }
            }
        }
        compressor.submit(tokens)
        chunkTextStart = textEnd
        chunkTokenCount = 0
    }

    private var textCount: Int { narrow ? text16.count : text32.count }

    /// Builds the current shard's index and writes it in its own transaction.
    private func finishShard() throws {
        guard !shardDocumentStarts.isEmpty else { return }
        if chunkTokenCount > 0 { compressChunk(textEnd: textCount) }
        let shardCode = code ?? SymbolCode(frequencies: counts)
        code = shardCode
        let chunks = try compressor.finish()
        guard let environment else { throw DatastoreError(.invalidArgument, path: options.output, "the build was cancelled") }

        let built: BuiltShard
        if narrow {
            var text = text16.buffer
            text.reverse()
            built = ShardConstruction.build(reversed: UnsafeBufferPointer(text), code: shardCode, threads: options.threads)
            text16.release()
        } else {
            var text = text32.buffer
            text.reverse()
            built = ShardConstruction.build(reversed: UnsafeBufferPointer(text), code: shardCode, threads: options.threads)
            text32.release()
        }
        defer { built.deallocate() }

        let k = shardCount
        let meta = ShardMeta(
            rows: built.rows, tokens: shardTokens, documents: shardDocumentStarts.count,
            firstDocument: totalDocuments - shardDocumentStarts.count,
            levelLengths: built.levels.map(\.count), textChunks: chunks.count)
        let estimate = built.levels.reduce(0) { $0 + $1.count } + shardTokens * 4 + (64 << 20)
        try environment.setMapSize(currentSize() + estimate)
        let txn = try LMDBWriteTransaction(environment)
        try putJSON(txn, Keys.meta(k), meta)
        try putTable(txn, Keys.firstRows(k), BinaryTables.bytes(of: built.firstRow))
        try putTable(txn, Keys.anchors(k), BinaryTables.bytes(of: built.anchors))
        let documents = try Zstd.compress(BinaryTables.bytes(of: shardDocumentStarts))
        try putTable(txn, Keys.documents(k), documents)
        for (c, frame) in chunks.enumerated() { try putTable(txn, Keys.text(k, c), frame) }

        // Levels: encode straight into the reserved map space, superblocks alongside.
        var rankAtStart = [UInt32](repeating: 0, count: shardCode.nodeCount * 16)
        for (d, nibbles) in built.levels.enumerated() {
            let n = nibbles.count
            let superCount = NibbleSequence.superCount(for: n)
            let supers = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: superCount * 16)
            defer { supers.deallocate() }
            try txn.put(Keys.levelBlocks(k, d), count: NibbleSequence.blockCount(for: n) * NibbleSequence.blockBytes, align64: true) { dst in
                NibbleSequence.encode(UnsafeBufferPointer(nibbles), blocks: dst, supers: supers)
                checksums[Keys.levelBlocks(k, d)] = digests(UnsafeRawBufferPointer(dst))
                // Ranks at node starts: one pass over the level, sampling at each node's start.
                let view = NibbleSequence(
                    count: n, blocks: UnsafeRawPointer(dst.baseAddress.unsafelyUnwrapped),
                    supers: UnsafePointer(supers.baseAddress.unsafelyUnwrapped))
                for v in 0..<shardCode.nodeCount where Int(shardCode.depth[v]) == d {
                    for x in 0..<16 { rankAtStart[v * 16 + x] = UInt32(view.rank(x, Int(built.levelStart[v]))) }
                }
            }
            try putTable(txn, Keys.levelSupers(k, d), BinaryTables.bytes(of: Array(supers)))
        }
        try putTable(
            txn, Keys.nodes(k),
            BinaryTables.bytes(of: built.levelStart) + BinaryTables.bytes(of: built.nodeLength) + BinaryTables.bytes(of: rankAtStart))
        try txn.commit()

        shardCount += 1
        shardTokens = 0
        chunkTextStart = 0
        chunkTokenCount = 0
        shardDocumentStarts = []
    }

    /// Finishes the build and moves the datastore into place.
    /// - Returns: the header written.
    @discardableResult
    public func finish() throws -> DatastoreHeader {
        guard !finished else { throw DatastoreError(.invalidArgument, path: options.output, "finish() was called twice") }
        do {
            guard totalTokens > 0 else { throw DatastoreError(.emptyCorpus, path: options.source.isEmpty ? options.output : options.source, "the corpus has no tokens") }
            try finishShard()
            guard let environment, let code else { throw DatastoreError(.invalidArgument, path: options.output, "the build was cancelled") }
            let txn = try LMDBWriteTransaction(environment)
            try putTable(txn, Keys.tree, BinaryTables.encode(code))
            let manifestJSON = try JSONEncoder.sorted.encode(manifest)
            try putTable(txn, Keys.manifest, try Zstd.compress(Array(manifestJSON), level: 9))
            let header = DatastoreHeader(
                format: DatastoreHeader.formatName, formatVersion: DatastoreHeader.currentFormatVersion,
                tokenWidth: narrow ? 16 : 32, vocabularySize: options.vocabularySize, tokenizer: options.tokenizer,
                tokens: totalTokens, documents: totalDocuments, shards: shardCount,
                build: BuildRecord(
                    createdBy: "rasd \(RASDVersion.string)", createdAt: ISO8601DateFormatter().string(from: Date()),
                    shardTokens: options.shardTokens, threads: options.threads, seconds: Date().timeIntervalSince(startTime),
                    source: options.source, index: Self.indexDescription),
                manifest: ManifestSummary(entries: manifest.count, sha256: manifestJSON.withUnsafeBytes { BinaryTables.sha256($0) }))
            try putJSON(txn, Keys.header, header)
            let table = ChecksumTable(algorithm: "sha256", chunkBytes: Self.checksumChunkBytes, values: checksums)
            let tableJSON = try JSONEncoder.sorted.encode(table)
            try txn.put(Keys.checksums, bytes: tableJSON)
            try txn.commit()
            try environment.sync()
            self.environment = nil
            try AtomicDirectory.install(workDirectory, at: options.output, replace: options.force)
            finished = true
            return header
        } catch {
            cancel()
            throw error
        }
    }

    static let indexDescription =
        "FM-index of the reversed text, 16-ary Huffman-shaped wavelet tree, 192-position nibble rank blocks"

    private func digests(_ bytes: UnsafeRawBufferPointer) -> [String] {
        BinaryTables.chunkDigests(bytes, chunk: Self.checksumChunkBytes)
    }

    private func putTable(_ txn: LMDBWriteTransaction, _ key: String, _ bytes: [UInt8]) throws {
        try txn.put(key, bytes: bytes)
        checksums[key] = bytes.withUnsafeBytes { digests($0) }
    }

    private func putJSON<T: Encodable>(_ txn: LMDBWriteTransaction, _ key: String, _ value: T) throws {
        try putTable(txn, key, Array(try JSONEncoder.sorted.encode(value)))
    }

    private func currentSize() -> Int {
        let attributes = try? FileManager.default.attributesOfItem(atPath: workDirectory + "/data.mdb")
        return (attributes?[.size] as? Int) ?? 0
    }
}

extension JSONEncoder {
    /// Deterministic, readable JSON.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

/// The version of rasd, recorded in datastores.
public enum RASDVersion {
    public static let string = "0.1.0"
}

/// Compresses text chunks on a background thread while the builder keeps reading documents.
final class ChunkCompressor: @unchecked Sendable {
    // @unchecked: the mutable state is guarded by `lock`.
    private let lock = NSLock()
    private var frames: [[UInt8]] = []
    private var failure: Error?
    private let group = DispatchGroup()
    private let queue = DispatchQueue(label: "rasd.datastore.compress")

    /// Queues one chunk; frames come back in submission order.
    func submit(_ bytes: [UInt8]) {
        let index = lock.withLock { () -> Int in
            frames.append([])
            return frames.count - 1
        }
        queue.async(group: group) { [self] in
            do {
                let frame = try Zstd.compress(bytes, level: 3)
                lock.withLock { frames[index] = frame }
            } catch {
                lock.withLock { failure = error }
            }
        }
    }

    /// Waits for every queued chunk and hands over the frames, leaving the compressor empty.
    func finish() throws -> [[UInt8]] {
        group.wait()
        return try lock.withLock {
            if let failure { self.failure = nil; frames = []; throw failure }
            defer { frames = [] }
            return frames
        }
    }
}

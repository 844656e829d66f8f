import CRASDKernels
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
    /// Receives one line per build stage (with its duration); nil for silence.
    public var log: (@Sendable (String) -> Void)?

    /// The largest shard: suffix sorting uses 32-bit positions.
    public static let maximumShardTokens = Int(Int32.max) - 1024

    /// Creates options; `shardTokens` defaults to 256 M tokens (about 2.3 GB of memory at peak).
    public init(
        output: String, vocabularySize: Int, tokenizer: TokenizerIdentity? = nil, shardTokens: Int = 256 << 20,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount, force: Bool = false, source: String = "",
        log: (@Sendable (String) -> Void)? = nil
    ) {
        self.output = output
        self.vocabularySize = vocabularySize
        self.tokenizer = tokenizer
        self.shardTokens = shardTokens
        self.threads = threads
        self.force = force
        self.source = source
        self.log = log
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
    private var scratch: [UInt32] = []
    private var shardClock: StageClock
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
        shardClock = StageClock(log: options.log, prefix: "shard 0: ")
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
        if let done = try document.withContiguousStorageIfAvailable({ try add(tokens: $0) }) { return done }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: document)
        try scratch.withUnsafeBufferPointer { try add(tokens: $0) }
    }

    /// Adds one document from contiguous storage (the fast path).
    public func add(tokens document: UnsafeBufferPointer<UInt32>) throws {
        let length = document.count
        if shardTokens > 0 && shardTokens + length > options.shardTokens {
            do { try finishShard() } catch { throw translated(error) }
        }
        guard length <= options.shardTokens else {
            throw DatastoreError(
                .invalidArgument, path: options.output,
                "document \(totalDocuments) has \(length) tokens, more than the shard size \(options.shardTokens); raise --shard-tokens")
        }
        let vocabulary = UInt32(options.vocabularySize)
        var largest: UInt32 = 0
        for token in document { largest = max(largest, token) }
        if length > 0 && largest >= vocabulary, let position = document.firstIndex(where: { $0 >= vocabulary }) {
            throw DatastoreError(
                .tokenOutOfRange, path: options.source.isEmpty ? options.output : options.source,
                "document \(totalDocuments) has token id \(document[position]) at position \(position), not below the vocabulary size \(vocabulary)")
        }
        shardDocumentStarts.append(UInt64(shardTokens))
        var done = 0
        while done < length {
            // Copy up to the end of the current text chunk.
            let take = min(length - done, Self.chunkTokens - chunkTokenCount)
            let part = UnsafeBufferPointer(rebasing: document[done..<(done + take)])
            counts.withUnsafeMutableBufferPointer { c in
                for token in part { c[Int(token) &+ Alphabet.firstToken] &+= 1 }
            }
            if narrow { appendSymbols(part, to: &text16) } else { appendSymbols(part, to: &text32) }
            done += take
            chunkTokenCount += take
            if chunkTokenCount == Self.chunkTokens { compressChunk(textEnd: textCount) }
        }
        if narrow { text16.append(UInt16(Alphabet.documentBoundary)) } else { text32.append(UInt32(Alphabet.documentBoundary)) }
        counts[Alphabet.documentBoundary] += 1
        shardTokens += length
        totalDocuments += 1
        totalTokens += length
    }

    private func appendSymbols<S: FixedWidthInteger>(_ tokens: UnsafeBufferPointer<UInt32>, to text: inout GrowableBuffer<S>) {
        text.extend(by: tokens.count) { dst in
            for (i, token) in tokens.enumerated() { dst[i] = S(truncatingIfNeeded: token &+ UInt32(Alphabet.firstToken)) }
        }
    }

    /// Compresses the current chunk (text-buffer positions `chunkTextStart..<textEnd`) in the background.
    ///
    /// The text buffer grows by `realloc`, which may move it, so the chunk's token ids are copied
    /// out (without document boundaries) before the background job starts.
    private func compressChunk(textEnd: Int) {
        let tokens = narrow ? Self.tokenBytes(text16.buffer, chunkTextStart..<textEnd, count: chunkTokenCount)
            : Self.tokenBytes(text32.buffer, chunkTextStart..<textEnd, count: chunkTokenCount)
        compressor.submit(tokens)
        chunkTextStart = textEnd
        chunkTokenCount = 0
    }

    private var textCount: Int { narrow ? text16.count : text32.count }

    /// Little-endian token ids of the symbols in `range`, document boundaries left out.
    private static func tokenBytes<S: FixedWidthInteger>(_ text: UnsafeMutableBufferPointer<S>, _ range: Range<Int>, count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count * MemoryLayout<S>.size) { bytes, initialized in
            let out = UnsafeMutableRawPointer(bytes.baseAddress.unsafelyUnwrapped)
            var k = 0
            for i in range {
                let symbol = text[i]
                if symbol == S(Alphabet.documentBoundary) { continue }
                out.storeBytes(of: (symbol &- S(Alphabet.firstToken)).littleEndian, toByteOffset: k * MemoryLayout<S>.size, as: S.self)
                k += 1
            }
            initialized = k * MemoryLayout<S>.size
        }
    }

    /// Builds the current shard's index and writes it in its own transaction.
    private func finishShard() throws {
        guard !shardDocumentStarts.isEmpty else { return }
        if chunkTokenCount > 0 { compressChunk(textEnd: textCount) }
        let shardCode = code ?? SymbolCode(frequencies: counts)
        code = shardCode
        let chunks = try compressor.finish()
        guard let environment else { throw DatastoreError(.invalidArgument, path: options.output, "the build was cancelled") }

        var clock = shardClock
        defer { shardClock = StageClock(log: options.log, prefix: "shard \(shardCount): ") }
        clock.lap("read \(shardTokens) tokens in \(shardDocumentStarts.count) documents")
        let built: BuiltShard
        if narrow {
            built = Self.index(text: &text16, code: shardCode, clock: &clock)
        } else {
            built = Self.index(text: &text32, code: shardCode, clock: &clock)
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
        clock.lap("wrote the index")

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
            throw translated(error)
        }
    }

    /// Errors name the output, not the hidden work directory, and a failed write on a full disk
    /// (or past a file size limit) says so: LMDB reports a short write as EIO.
    private func translated(_ error: Error) -> Error {
        guard var e = error as? DatastoreError else { return error }
        if e.path.hasPrefix(workDirectory) { e.path = options.output }
        if e.kind == .io || e.kind == .lmdb || e.kind == .diskFull, let reason = Self.writeLimitReason(at: workDirectory) {
            e.kind = .diskFull
            e.message += " (\(reason))"
        }
        return e
    }

    /// Why writes below `directory` may fail: a nearly full file system or a file size limit.
    private static func writeLimitReason(at directory: String) -> String? {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            return "a file size limit of \(limit.rlim_cur) bytes is set (ulimit -f)"
        }
        var fs = statvfs()
        let parent = URL(fileURLWithPath: directory).deletingLastPathComponent().path
        if statvfs(parent, &fs) == 0, UInt64(fs.f_bavail) * UInt64(fs.f_frsize) < 64 << 20 {
            return "only \(UInt64(fs.f_bavail) * UInt64(fs.f_frsize) >> 20) MiB free on this file system"
        }
        return nil
    }

    /// Reverses the shard's text, transforms it, frees it, then builds the wavelet tree.
    private static func index<S: FixedWidthInteger & UnsignedInteger & Sendable>(
        text: inout GrowableBuffer<S>, code: SymbolCode, clock: inout StageClock
    ) -> BuiltShard {
        text.shrinkToFit()
        // Reading freed many chunk-sized buffers that the allocator keeps for reuse; hand them
        // back before the suffix array, the build's largest allocation.
        rasd_release_free_heap()
        var symbols = text.buffer
        symbols.reverse()
        let (bwt, anchors) = ShardConstruction.transform(
            reversed: UnsafeBufferPointer(symbols), symbolCount: code.symbolCount, clock: &clock)
        text.release()
        defer { free(bwt.baseAddress) }
        return ShardConstruction.waveletTree(bwt: UnsafeBufferPointer(bwt), anchors: anchors, code: code, clock: &clock)
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

/// Times the stages of a build and reports them through the build's log.
struct StageClock {
    let log: (@Sendable (String) -> Void)?
    let prefix: String
    private var last = DispatchTime.now()

    init(log: (@Sendable (String) -> Void)?, prefix: String) {
        self.log = log
        self.prefix = prefix
    }

    /// Logs `stage` with the time since the previous lap.
    mutating func lap(_ stage: String) {
        let now = DispatchTime.now()
        let seconds = Double(now.uptimeNanoseconds - last.uptimeNanoseconds) / 1e9
        last = now
        log?(prefix + stage + String(format: " (%.2f s, peak memory %.0f MiB)", seconds, Double(Self.peakResidentBytes()) / 1_048_576))
    }

    /// The process's peak resident set so far (Linux `VmHWM`), or 0 where unavailable.
    static func peakResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let digits = line.split(separator: " ").compactMap { Int($0) }
            return (digits.first ?? 0) * 1024
        }
        return 0
    }
}

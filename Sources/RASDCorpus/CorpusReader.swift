import Crypto
import Foundation
import RASDTokenizer

/// Reads a corpus into tokenized documents: in parallel, in a deterministic order, in bounded
/// memory.
///
/// Workers (one per core by default) each take the next file or record, read, check and
/// tokenize it with their own ``TokenEncoder``; the calling thread receives the documents in
/// corpus order (sorted relative paths, then line order for JSON lines), so the same corpus
/// always yields the same documents whatever the timing. At most ``Options/maxInFlightBytes``
/// of input are claimed but not yet delivered, which bounds memory however large the corpus.
///
/// ```swift
/// let reader = CorpusReader(source: try CorpusCatalog().source("code"), tokenizer: tokenizer)
/// let summary = try reader.read { document in
///     try builder.add(document: document)   // the datastore builder
/// }
/// ```
public struct CorpusReader: Sendable {
    /// Tuning and policy.
    public struct Options: Sendable {
        /// Fail on the first file that must be skipped (except empty ones) instead of warning.
        public var strict = false
        /// Worker threads (default: the active processor count).
        public var parallelism = ProcessInfo.processInfo.activeProcessorCount
        /// Files or records larger than this are skipped (`too-large`), or fail in strict mode.
        public var maxDocumentBytes = 256 << 20
        /// Most input bytes claimed by workers and not yet delivered.
        public var maxInFlightBytes = 256 << 20
        /// Seconds between progress reports.
        public var progressInterval = 0.25

        public init() {}
    }

    public var source: CorpusSource
    public var tokenizer: Tokenizer
    public var options: Options

    public init(source: CorpusSource, tokenizer: Tokenizer, options: Options = Options()) {
        self.source = source
        self.tokenizer = tokenizer
        self.options = options
    }

    /// Reads the whole corpus, calling `document` for each document in corpus order on the
    /// calling thread.
    ///
    /// - Parameters:
    ///   - progress: called on the calling thread every ``Options/progressInterval`` seconds
    ///     and once at the end.
    ///   - warning: called for each skipped file or record, in corpus order.
    ///   - document: receives the documents; an error it throws stops the read and is rethrown.
    /// - Throws: ``CorpusError`` (a missing root; in strict mode, a file that must be skipped)
    ///   or whatever `document` throws.
    @discardableResult
    public func read(
        progress: ((CorpusProgress) -> Void)? = nil,
        warning: ((CorpusWarning) -> Void)? = nil,
        document: (CorpusDocument) throws -> Void
    ) throws -> CorpusSummary {
        let files = try source.listFiles()
        let pipeline = Pipeline(files: files, format: source.format, options: options)
        let start = Date()
        var summary = CorpusSummary()
        summary.files = files.count
        var counters = CorpusProgress(
            filesTotal: files.count, filesDone: 0, bytesTotal: files.reduce(0) { $0 + $1.byteCount },
            bytesDone: 0, documents: 0, tokens: 0, skipped: 0, elapsed: 0)
        var lastReport = Date.distantPast

        let workers = max(1, options.parallelism)
        for _ in 0..<workers {
            let tokenizer = self.tokenizer
            let thread = Thread { pipeline.work(tokenizer: tokenizer) }
            thread.stackSize = 4 << 20
            thread.start()
        }
        defer { pipeline.stopAndJoin() }

        while let (outcome, filesDone) = pipeline.nextOutcome(timeout: options.progressInterval) {
            if let outcome {
                counters.bytesDone += outcome.inputBytes
                summary.droppedBytes += outcome.droppedBytes
                switch outcome.kind {
                case .document(let entry, let tokens):
                    let doc = CorpusDocument(index: summary.documents, entry: entry, tokens: tokens)
                    summary.documents += 1
                    summary.tokens += tokens.count
                    summary.bytes += entry.byteCount
                    counters.documents = summary.documents
                    counters.tokens = summary.tokens
                    try document(doc)
                case .skipped(let w):
                    if options.strict && w.reason.failsStrictMode {
                        throw CorpusError(.strict, w.path, "\(w.reason): \(w.detail)")
                    }
                    summary.skipped[w.reason, default: 0] += 1
                    counters.skipped += 1
                    warning?(w)
                }
            }
            // Whole files are done when delivered; JSON-lines files when their records are handed out.
            if case .files = source.format {
                if outcome != nil { counters.filesDone += 1 }
            } else {
                counters.filesDone = filesDone
            }
            if let progress, Date().timeIntervalSince(lastReport) >= options.progressInterval {
                counters.elapsed = Date().timeIntervalSince(start)
                progress(counters)
                lastReport = Date()
            }
        }
        summary.seconds = Date().timeIntervalSince(start)
        counters.elapsed = summary.seconds
        counters.filesDone = files.count
        counters.bytesDone = counters.bytesTotal
        progress?(counters)
        return summary
    }
}

/// The result of processing one work item.
struct Outcome: Sendable {
    enum Kind: Sendable {
        case document(CorpusManifestEntry, [UInt32])
        case skipped(CorpusWarning)
    }
    var kind: Kind
    /// Input bytes the item accounts for (progress).
    var inputBytes: Int
    var droppedBytes: Int
}

/// One unit of work: a whole file, or one record of a JSON-lines file.
enum WorkItem: Sendable {
    case file(CorpusFile)
    case record(path: String, line: Int, bytes: Data)
    case failedFile(CorpusFile, SkipReason, String)
}

/// Hands out work items in corpus order; used under the pipeline's lock.
struct WorkSource {
    let files: [CorpusFile]
    let format: CorpusSource.Format
    var fileIndex = 0
    /// The JSON-lines file being split into records.
    var current: (file: CorpusFile, data: Data, offset: Int, line: Int)?
    var filesDone = 0

    mutating func next() -> (WorkItem, size: Int)? {
        switch format {
        case .files:
            guard fileIndex < files.count else { return nil }
            defer { fileIndex += 1; filesDone = fileIndex }
            return (.file(files[fileIndex]), files[fileIndex].byteCount)
        case .jsonLines:
            while true {
                if var c = current {
                    let data = c.data
                    while c.offset < data.count {
                        let start = data.startIndex + c.offset
                        let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
                        c.offset = end - data.startIndex + 1
                        c.line += 1
                        let line = data[start..<end]
                        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }  // blank line
                        current = c
                        return (.record(path: c.file.relativePath, line: c.line, bytes: line), line.count + 1)
                    }
                    current = nil
                    filesDone += 1
                }
                guard fileIndex < files.count else { return nil }
                let file = files[fileIndex]
                fileIndex += 1
                if let problem = file.problem {
                    filesDone += 1
                    return (.failedFile(file, .unreadable, problem), 0)
                }
                do {
                    let data = try Data(contentsOf: URL(fileURLWithPath: file.path), options: .alwaysMapped)
                    current = (file, data, 0, 0)
                } catch {
                    filesDone += 1
                    return (.failedFile(file, .unreadable, error.localizedDescription), file.byteCount)
                }
            }
        }
    }
}

/// The shared state of workers and the delivering thread. Every field is guarded by `lock`.
final class Pipeline: @unchecked Sendable {
    private let lock = NSCondition()
    private var source: WorkSource
    private let format: CorpusSource.Format
    private let options: CorpusReader.Options
    private var nextClaim = 0
    private var delivered = 0
    private var results: [Int: Outcome] = [:]
    private var claimedSizes: [Int: Int] = [:]
    private var inFlightBytes = 0
    private var exhausted = false
    private var stopping = false
    private var running = 0

    init(files: [CorpusFile], format: CorpusSource.Format, options: CorpusReader.Options) {
        source = WorkSource(files: files, format: format)
        self.format = format
        self.options = options
        running = max(1, options.parallelism)
    }

    /// A worker thread's loop.
    func work(tokenizer: Tokenizer) {
        let encoder = tokenizer.makeEncoder()
        lock.lock()
        defer {
            running -= 1
            lock.broadcast()
            lock.unlock()
        }
        while true {
            // Wait while the window is full (something in flight and the budget spent).
            while !stopping && !exhausted && nextClaim > delivered && inFlightBytes >= options.maxInFlightBytes {
                lock.wait()
            }
            if stopping || exhausted { return }
            guard let (item, size) = source.next() else {
                exhausted = true
                lock.broadcast()
                return
            }
            let seq = nextClaim
            nextClaim += 1
            claimedSizes[seq] = size
            inFlightBytes += size
            lock.unlock()
            let outcome = process(item, encoder: encoder)
            lock.lock()
            results[seq] = outcome
            lock.broadcast()
        }
    }

    /// The next outcome in order (nil inside the pair when none is ready within `timeout`, for
    /// progress reports), or nil when everything has been delivered.
    func nextOutcome(timeout: Double) -> (Outcome?, filesDone: Int)? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while results[delivered] == nil {
            if exhausted && delivered == nextClaim { return nil }
            if running == 0 && delivered == nextClaim { return nil }
            if !lock.wait(until: deadline) { return (nil, source.filesDone) }
        }
        let outcome = results.removeValue(forKey: delivered)
        inFlightBytes -= claimedSizes.removeValue(forKey: delivered) ?? 0
        delivered += 1
        lock.broadcast()
        return (outcome, source.filesDone)
    }

    /// Stops the workers (they finish the item in hand) and waits for them.
    func stopAndJoin() {
        lock.lock()
        stopping = true
        lock.broadcast()
        while running > 0 { lock.wait() }
        lock.unlock()
    }

    private func process(_ item: WorkItem, encoder: TokenEncoder) -> Outcome {
        switch item {
        case .failedFile(let file, let reason, let detail):
            return Outcome(kind: .skipped(CorpusWarning(path: file.relativePath, reason: reason, detail: detail)), inputBytes: file.byteCount, droppedBytes: 0)
        case .file(let file):
            func skip(_ reason: SkipReason, _ detail: String) -> Outcome {
                Outcome(kind: .skipped(CorpusWarning(path: file.relativePath, reason: reason, detail: detail)), inputBytes: file.byteCount, droppedBytes: 0)
            }
            if let problem = file.problem { return skip(.unreadable, problem) }
            if file.byteCount > options.maxDocumentBytes {
                return skip(.tooLarge, "\(file.byteCount) bytes, more than the limit of \(options.maxDocumentBytes)")
            }
            switch readFile(file.path, expectedSize: file.byteCount) {
            case .failure(let e):
                return skip(.unreadable, e.message)
            case .success(let bytes):
                if bytes.isEmpty { return skip(.empty, "the file is empty") }
                // Git's heuristic: a NUL byte near the start means binary.
                if bytes.prefix(8192).contains(0) { return skip(.binary, "NUL byte in the first 8 KiB") }
                return tokenize(bytes, path: file.relativePath, inputBytes: file.byteCount, encoder: encoder)
            }
        case .record(let path, let line, let data):
            let name = "\(path):\(line)"
            func skip(_ reason: SkipReason, _ detail: String) -> Outcome {
                Outcome(kind: .skipped(CorpusWarning(path: name, reason: reason, detail: detail)), inputBytes: data.count + 1, droppedBytes: 0)
            }
            if data.count > options.maxDocumentBytes {
                return skip(.tooLarge, "\(data.count) bytes, more than the limit of \(options.maxDocumentBytes)")
            }
            guard case .jsonLines(let field) = format else { return skip(.invalidJSON, "not a JSON-lines corpus") }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(data), options: [.fragmentsAllowed])
            } catch {
                let valid = data.withUnsafeBytes { raw in
                    UTF8Validation.firstInvalidOffset(raw.bindMemory(to: UInt8.self))
                }
                if let offset = valid { return skip(.invalidUTF8, "invalid UTF-8 at byte \(offset) of the line") }
                return skip(.invalidJSON, "not valid JSON")
            }
            guard let dict = object as? [String: Any] else { return skip(.invalidJSON, "not a JSON object") }
            guard let text = dict[field] as? String else { return skip(.missingField, "no string field \"\(field)\"") }
            if text.isEmpty { return skip(.empty, "field \"\(field)\" is empty") }
            return tokenize(Array(text.utf8), path: name, inputBytes: data.count + 1, encoder: encoder)
        }
    }

    private func tokenize(_ bytes: [UInt8], path: String, inputBytes: Int, encoder: TokenEncoder) -> Outcome {
        let droppedBefore = encoder.droppedByteCount
        var tokens: [UInt32] = []
        let invalid: Int? = bytes.withUnsafeBufferPointer { buffer in
            if let offset = UTF8Validation.firstInvalidOffset(buffer) { return offset }
            encoder.encode(utf8: buffer, into: &tokens)
            return nil
        }
        if let invalid {
            return Outcome(
                kind: .skipped(CorpusWarning(path: path, reason: .invalidUTF8, detail: "invalid UTF-8 at byte \(invalid)")),
                inputBytes: inputBytes, droppedBytes: 0)
        }
        let digest = SHA256.hash(data: bytes)
        let hex = digest.map { String(format: "%02x", $0) }.joined()
        let entry = CorpusManifestEntry(path: path, byteCount: bytes.count, sha256: hex, tokenCount: tokens.count)
        return Outcome(kind: .document(entry, tokens), inputBytes: inputBytes, droppedBytes: encoder.droppedByteCount - droppedBefore)
    }
}

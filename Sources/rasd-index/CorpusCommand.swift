import ArgumentParser
import Foundation
import RASDCorpus
import RASDGGUF
import RASDTokenizer

/// `rasd-index corpus ...`: list, fetch and tokenize corpora without building a datastore.
struct Corpus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "List, fetch and tokenize corpora (named ones under corpora/, or any directory or file).",
        subcommands: [List.self, Fetch.self, TokenizeCorpus.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The named corpora and whether they are fetched.")

        func run() throws {
            let catalog = CorpusCatalog()
            let names = catalog.names()
            guard !names.isEmpty else {
                throw InputError("no named corpora under \(catalog.directory) (run from the repository root or set RASD_CORPORA)")
            }
            for name in names {
                let m = try catalog.manifest(name)
                let state = catalog.isFetched(name) ? "fetched" : "not fetched"
                print("\(name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(state.padding(toLength: 12, withPad: " ", startingAt: 0)) \(m.description)")
            }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch named corpora into rasd's cache (idempotent).")

        @Argument(help: "Corpus names (default: all).")
        var names: [String] = []

        func run() throws {
            let catalog = CorpusCatalog()
            for name in names.isEmpty ? catalog.names() : names { try catalog.fetch(name) }
        }
    }
}

/// `rasd-index corpus tokenize`: read and tokenize a corpus, print a summary, and optionally
/// write the pre-tokenized form `rasd-index build corpus` reads.
struct TokenizeCorpus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize a corpus in parallel and report documents, tokens, skips and speed.",
        discussion: """
            With --output DIR, writes DIR/tokens.u32 (little-endian uint32 ids), \
            DIR/documents.u64 (little-endian uint64 start offsets, then the total token count) \
            and DIR/manifest.jsonl (path, byteCount, sha256, tokenCount per document).
            """)

    @Argument(help: "A named corpus (code, docs, papers) or a directory or file.")
    var corpus: String

    @Option(help: "A GGUF model or tokenizer.json (default: the reference model).")
    var model: String = ReferenceModel.path

    @Option(name: .customLong("include"), help: "Only files matching this glob (repeatable), e.g. '*.py'.")
    var include: [String] = []

    @Option(name: .customLong("exclude"), help: "Leave out files matching this glob (repeatable).")
    var exclude: [String] = []

    @Option(help: "Read JSON lines; each record's string under this field is a document.")
    var field: String?

    @Flag(help: "Fail on invalid UTF-8, binary or unreadable files instead of skipping them.")
    var strict = false

    @Option(help: "Worker threads (default: all cores).")
    var jobs: Int?

    @Option(help: "Directory to write tokens.u32, documents.u64 and manifest.jsonl into.")
    var output: String?

    @Flag(inversion: .prefixedNo, help: "Fetch a named corpus that is not fetched yet.")
    var fetch = true

    func run() throws {
        let tokenizer = try Tokenizer(contentsOf: model)
        let source = try CorpusCatalog().resolve(corpus, include: include, exclude: exclude, field: field, fetchIfMissing: fetch)
        var options = CorpusReader.Options()
        options.strict = strict
        if let jobs { options.parallelism = max(1, jobs) }
        let reader = CorpusReader(source: source, tokenizer: tokenizer, options: options)

        var writer: PreTokenizedWriter?
        if let output { writer = try PreTokenizedWriter(directory: output) }
        let display = ProgressDisplay(label: source.name)
        var warnings = 0
        let summary: CorpusSummary
        do {
            summary = try reader.read(
                progress: display.update,
                warning: { w in
                    warnings += 1
                    if warnings <= 20 {
                        display.finish()
                        FileHandle.standardError.write(Data("warning: \(w)\n".utf8))
                    }
                },
                document: { try writer?.add($0) })
        } catch {
            display.finish()
            throw error
        }
        display.finish()
        try writer?.finish()
        if warnings > 20 { FileHandle.standardError.write(Data("warning: \(warnings - 20) more skipped files not shown\n".utf8)) }
        let skipped = SkipReason.allCases.compactMap { r in summary.skipped[r].map { "\(r) \($0)" } }.joined(separator: ", ")
        print("corpus \(source.name): \(summary.documents) documents, \(summary.tokens) tokens, \(summary.bytes) bytes from \(summary.files) files")
        print("skipped: \(skipped.isEmpty ? "none" : skipped); bytes without a token dropped: \(summary.droppedBytes)")
        print(String(format: "time %.2f s, %.2f MB/s, %.0f tokens/s with %d workers (tokenizer %@, fingerprint %@)",
                     summary.seconds, Double(summary.bytes) / 1e6 / max(summary.seconds, 1e-9),
                     Double(summary.tokens) / max(summary.seconds, 1e-9), options.parallelism, tokenizer.name, String(tokenizer.fingerprint.prefix(16))))
    }
}

/// Writes the pre-tokenized corpus form: tokens.u32, documents.u64, manifest.jsonl.
struct PreTokenizedWriter {
    private let tokens: FileHandle
    private let documents: FileHandle
    private let manifest: FileHandle
    private var offset: UInt64 = 0
    private var buffer: [UInt8] = []

    init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func create(_ name: String) throws -> FileHandle {
            let path = directory + "/" + name
            guard (try? Data().write(to: URL(fileURLWithPath: path))) != nil, let h = FileHandle(forWritingAtPath: path) else {
                throw InputError("\(path): cannot create the file")
            }
            return h
        }
        tokens = try create("tokens.u32")
        documents = try create("documents.u64")
        manifest = try create("manifest.jsonl")
    }

    mutating func add(_ d: CorpusDocument) throws {
        try write(offset, to: documents)
        offset += UInt64(d.tokens.count)
        d.tokens.withUnsafeBytes { buffer.append(contentsOf: $0) }  // little-endian hosts only (x86-64, arm64)
        if buffer.count >= 1 << 22 { try flush() }
        try manifest.write(contentsOf: try JSONEncoder().encode(d.entry) + Data("\n".utf8))
    }

    mutating func finish() throws {
        try write(offset, to: documents)
        try flush()
        try tokens.close()
        try documents.close()
        try manifest.close()
    }

    private mutating func flush() throws {
        try tokens.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    private func write(_ v: UInt64, to h: FileHandle) throws {
        try withUnsafeBytes(of: v.littleEndian) { try h.write(contentsOf: Data($0)) }
    }
}

import ArgumentParser
import Foundation
import RASDCorpus
import RASDDatastore
import RASDGGUF
import RASDTokenizer

/// `rasd-index build ...`: build datastores.
struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a datastore.",
        subcommands: [BuildCorpus.self]
    )
}

/// `rasd-index build corpus <input>`: index a corpus into a new datastore.
struct BuildCorpus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "Index a corpus into a datastore (atomically: a failed build leaves any previous one intact).",
        discussion: """
            Text: a named corpus (code, docs, papers; fetched when missing), a directory or a file, \
            tokenized with --model's tokenizer (the reference model by default). The output defaults \
            to indexes/<name>.

            Pre-tokenized (with --vocab-size): a file of little-endian uint32 token ids with --documents, \
            a file of little-endian uint64 document start offsets (optionally ending with the token count); \
            or a .jsonl file with one JSON array of token ids per line.
            """
    )

    @Argument(help: "A named corpus, a directory or file of text, a .u32 token file, or a .jsonl file of id arrays.")
    var input: String

    @Option(name: .long, help: "Directory of the datastore to create (default: indexes/<name>).")
    var output: String?

    @Flag(name: .long, help: "Replace an existing datastore.")
    var force = false

    @Option(name: .long, help: "Most tokens per shard (bounds the build's memory at about 8 bytes per token).")
    var shardTokens: Int = 256 << 20

    @Option(name: .long, help: "Threads for indexing.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    // Pre-tokenized input.
    @Option(name: .long, help: "Vocabulary size of pre-tokenized input: every id must be below it.")
    var vocabSize: Int?

    @Option(name: .long, help: "Document start offsets (uint64, little-endian) for a .u32 token file.")
    var documents: String?

    // Text input.
    @Option(name: .long, help: "A GGUF model or tokenizer.json whose tokenizer tokenizes text (default: the reference model).")
    var model: String?

    @Option(name: .customLong("include"), help: "Only files matching this glob (repeatable), e.g. '*.py'.")
    var include: [String] = []

    @Option(name: .customLong("exclude"), help: "Leave out files matching this glob (repeatable).")
    var exclude: [String] = []

    @Option(name: .long, help: "Read JSON lines; each record's string under this field is a document.")
    var field: String?

    @Flag(name: .long, help: "Fail on invalid UTF-8, binary or unreadable files instead of skipping them.")
    var strict = false

    @Option(name: .long, help: "Tokenizer worker threads (default: all cores).")
    var jobs: Int?

    private var pretokenized: Bool { vocabSize != nil || input.hasSuffix(".u32") }

    func validate() throws {
        if pretokenized {
            guard vocabSize != nil else { throw ValidationError("a .u32 token file needs --vocab-size") }
            guard output != nil else { throw ValidationError("pre-tokenized input needs --output") }
            guard model == nil, field == nil, include.isEmpty, exclude.isEmpty else {
                throw ValidationError("--model, --field, --include and --exclude apply to text corpora, not token ids")
            }
        } else if documents != nil {
            throw ValidationError("--documents applies to .u32 token files")
        }
    }

    func run() async throws {
        let start = Date()
        let log: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data(("build: " + line + "\n").utf8)) }
        let header: DatastoreHeader
        let destination: String
        if let vocabSize, let output {
            destination = output
            let builder = try DatastoreBuilder(
                options: BuildOptions(
                    output: output, vocabularySize: vocabSize, shardTokens: shardTokens, threads: threads, force: force,
                    source: input, log: log))
            if input.hasSuffix(".jsonl") || input.hasSuffix(".json") {
                guard documents == nil else {
                    throw ValidationError("--documents applies to .u32 token files; a .jsonl file has one document per line")
                }
                try PretokenizedCorpus.addJSONLines(path: input, to: builder)
            } else {
                try PretokenizedCorpus.addTokenFile(tokens: input, documents: documents, to: builder)
            }
            header = try builder.finish()
        } else {
            (header, destination) = try buildFromText(log: log)
        }
        let info = try Datastore(path: destination, verification: .smallTables).info
        print(
            "built \(destination): \(header.tokens) tokens, \(header.documents) documents, \(header.shards) shard(s), "
                + "\(Formatting.bytes(info.bytesOnDisk)) (\(String(format: "%.2f", info.bytesPerToken)) bytes/token) in "
                + String(format: "%.1f s", Date().timeIntervalSince(start)))
    }

    /// Reads, tokenizes and indexes a text corpus; tokenizing runs on worker threads while the
    /// builder takes the documents in order.
    private func buildFromText(log: @escaping @Sendable (String) -> Void) throws -> (DatastoreHeader, String) {
        let tokenizer = try Tokenizer(contentsOf: model ?? ReferenceModel.existingPath())
        let source = try CorpusCatalog().resolve(input, include: include, exclude: exclude, field: field, fetchIfMissing: true)
        let destination = output ?? "indexes/\(source.name)"
        let builder = try DatastoreBuilder(
            options: BuildOptions(
                output: destination, vocabularySize: tokenizer.vocabularySize,
                tokenizer: TokenizerIdentity(name: tokenizer.name, fingerprint: tokenizer.fingerprint),
                shardTokens: shardTokens, threads: threads, force: force, source: source.root, log: log))
        var options = CorpusReader.Options()
        options.strict = strict
        if let jobs { options.parallelism = max(1, jobs) }
        let display = ProgressDisplay(label: source.name)
        var warnings = 0
        let summary: CorpusSummary
        do {
            summary = try CorpusReader(source: source, tokenizer: tokenizer, options: options).read(
                progress: display.update,
                warning: { w in
                    warnings += 1
                    if warnings <= 20 {
                        display.finish()
                        FileHandle.standardError.write(Data("warning: \(w)\n".utf8))
                    }
                },
                document: { d in
                    try builder.add(document: d.tokens)
                    builder.addManifestEntry(
                        ManifestEntry(path: d.entry.path, bytes: d.entry.byteCount, sha256: d.entry.sha256, documents: 1, tokens: d.entry.tokenCount))
                })
        } catch {
            display.finish()
            throw error
        }
        display.finish()
        if warnings > 20 { FileHandle.standardError.write(Data("warning: \(warnings - 20) more skipped files not shown\n".utf8)) }
        log(String(format: "read and tokenized %d files (%d documents, %.1f MB) in %.1f s", summary.files, summary.documents,
                   Double(summary.bytes) / 1e6, summary.seconds))
        return (try builder.finish(), destination)
    }
}

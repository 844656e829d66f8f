import ArgumentParser
import Foundation
import RASDDatastore

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
            Pre-tokenized input: a file of little-endian uint32 token ids with --documents, a file of \
            little-endian uint64 document start offsets (optionally ending with the token count); or a \
            .jsonl file with one JSON array of token ids per line.
            """
    )

    @Argument(help: "The corpus: a .u32 token file or a .jsonl file of id arrays.")
    var input: String

    @Option(name: .long, help: "Document start offsets (uint64, little-endian) for a token file.")
    var documents: String?

    @Option(name: .long, help: "Vocabulary size: every token id must be below it.")
    var vocabSize: Int

    @Option(name: .long, help: "Directory of the datastore to create, e.g. indexes/code.")
    var output: String

    @Flag(name: .long, help: "Replace an existing datastore.")
    var force = false

    @Option(name: .long, help: "Most tokens per shard (bounds the build's memory at about 9 bytes per token).")
    var shardTokens: Int = 256 << 20

    @Option(name: .long, help: "Threads to use.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() async throws {
        let start = Date()
        let options = BuildOptions(
            output: output, vocabularySize: vocabSize, shardTokens: shardTokens, threads: threads, force: force,
            source: input, log: { line in FileHandle.standardError.write(Data((line + "\n").utf8)) })
        let builder = try DatastoreBuilder(options: options)
        if input.hasSuffix(".jsonl") || input.hasSuffix(".json") {
            guard documents == nil else {
                throw ValidationError("--documents applies to .u32 token files; a .jsonl file has one document per line")
            }
            try PretokenizedCorpus.addJSONLines(path: input, to: builder)
        } else {
            try PretokenizedCorpus.addTokenFile(tokens: input, documents: documents, to: builder)
        }
        let header = try builder.finish()
        let info = try Datastore(path: output).info
        let seconds = Date().timeIntervalSince(start)
        print(
            "built \(output): \(header.tokens) tokens, \(header.documents) documents, \(header.shards) shard(s), "
                + "\(Formatting.bytes(info.bytesOnDisk)) (\(String(format: "%.2f", info.bytesPerToken)) bytes/token) in "
                + String(format: "%.1f s", seconds))
    }
}

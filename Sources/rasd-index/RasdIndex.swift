import ArgumentParser

/// `rasd-index`: build, inspect, query and serve rasd token datastores, and decode against them.
///
/// Every subcommand is a thin shell over the library modules; the logic lives there.
@main
struct RasdIndex: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rasd-index",
        abstract: "Retrieval-augmented speculative decoding: datastores, retrieval and decoding.",
        version: "0.1.0",
        subcommands: [
            Build.self, Info.self, Query.self, Verify.self, Serve.self, Stats.self, Reload.self, Tokenize.self, Corpus.self,
            Generate.self, Decode.self, Eval.self, Bench.self, DraftHeadCommand.self,
        ]
    )
}

import ArgumentParser

/// `rasd-index bench ...`: benchmark commands. Each prints medians in a table and, where a peer
/// can be run on this machine, the peer's figures from the same run.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print medians, side by side with peers in the same run.",
        subcommands: [BenchRetrieval.self, BenchService.self, BenchTrees.self, BenchTokenizer.self, BenchEngine.self, BenchDraftHead.self]
    )
}

import ArgumentParser
import Foundation
import RASDDatastore
import RASDTrees

/// `rasd-index query <datastore> --context ...`: the candidate continuations of a context.
struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Retrieve the candidate continuations of a context (the longest matching suffix and its top continuations).")

    @Argument(help: "The datastore directory.")
    var datastore: String

    @Option(name: .long, help: "Context token ids, comma-separated.")
    var context: String

    @OptionGroup var parameters: RetrievalOptions

    @Flag(name: .long, help: "Print one JSON object: matchLength, occurrences, sampled, tokens, parents, counts.")
    var json = false

    func run() async throws {
        let ids = try TokenList.parse(context, option: "--context")
        let store = try Datastore(path: datastore)
        let answer = try store.retrieve(context: ids, parameters: parameters.value)
        if json {
            print(Formatting.json(answer))
        } else {
            print("match length \(answer.matchLength), occurrences \(answer.occurrences)\(answer.sampled ? " (sampled)" : ""), \(answer.count) nodes")
            print(Formatting.tree(answer))
        }
    }
}

/// Retrieval parameters shared by the commands that query.
struct RetrievalOptions: ParsableArguments {
    @Option(name: .long, help: "Longest context suffix tried.")
    var maxMatch = RetrievalParameters().maxMatch
    @Option(name: .long, help: "Shortest context suffix accepted.")
    var minMatch = RetrievalParameters().minMatch
    @Option(name: .long, help: "Tokens of continuation per occurrence.")
    var continuationLength = RetrievalParameters().continuationLength
    @Option(name: .long, help: "Most trie nodes returned.")
    var maxNodes = RetrievalParameters().maxNodes

    var value: RetrievalParameters {
        RetrievalParameters(maxMatch: maxMatch, minMatch: minMatch, continuationLength: continuationLength, maxNodes: maxNodes)
    }

    func validate() throws {
        if let problem = value.validationError() { throw ValidationError(problem) }
    }
}

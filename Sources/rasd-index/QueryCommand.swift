import ArgumentParser
import Foundation
import RASDDatastore
import RASDService
import RASDTrees

/// `rasd-index query <datastore> --context ...`: the candidate continuations of a context, in
/// process or (with `--socket`) through a running daemon.
struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Retrieve the candidate continuations of a context (the longest matching suffix and its top continuations).",
        discussion: "In process: `query <dir> --context ...`. Through a daemon: `query --socket S --datastore NAME --context ...`; the answer is the same.")

    @Argument(help: "The datastore directory (in process).")
    var directory: String?

    @Option(name: .long, help: "Query a running daemon on this socket instead of opening a directory.")
    var socket: String?

    @Option(name: .long, help: "With --socket: the name of the datastore in the daemon.")
    var datastore: String?

    @Option(name: .long, help: "Context token ids, comma-separated.")
    var context: String

    @OptionGroup var parameters: RetrievalOptions

    @Flag(name: .long, help: "Print one JSON object: matchLength, occurrences, sampled, tokens, parents, counts.")
    var json = false

    func validate() throws {
        switch (directory, socket, datastore) {
        case (.some, nil, nil), (nil, .some, .some): break
        case (.some, _, _): throw ValidationError("give a datastore directory, or --socket with --datastore, not both")
        case (nil, .some, nil): throw ValidationError("--socket needs --datastore NAME (the daemon's name for it)")
        default: throw ValidationError("give a datastore directory, or --socket S --datastore NAME")
        }
    }

    func run() async throws {
        let ids = try TokenList.parse(context, option: "--context")
        let answer: CandidateTrie
        if let socket, let datastore {
            do {
                answer = try RetrievalClient(socketPath: socket, clientName: "rasd-index query")
                    .retrieve(datastore: datastore, context: ids, parameters: parameters.value)
            } catch let error as ServiceError {
                throw InputError(error.description)
            }
        } else {
            answer = try Datastore(path: directory ?? "").retrieve(context: ids, parameters: parameters.value)
        }
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

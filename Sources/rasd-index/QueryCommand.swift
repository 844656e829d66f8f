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
        discussion: """
            In process: `query <dir> --context ...`. Through a daemon: `query --socket S --datastore NAME --context ...`; \
            the answer is the same. --queries answers every context of a JSON-lines file ({"context": [ids], ...} per \
            line, other fields ignored; the query files of `bench retrieval` work as they are), one answer per line in \
            input order, opening the datastore or the connection once.
            """)

    @Argument(help: "The datastore directory (in process).")
    var directory: String?

    @Option(name: .long, help: "Query a running daemon on this socket instead of opening a directory.")
    var socket: String?

    @Option(name: .long, help: "With --socket: the name of the datastore in the daemon.")
    var datastore: String?

    @Option(name: .long, help: "Context token ids, comma-separated.")
    var context: String?

    @Option(name: .long, help: "Answer every context of this JSON-lines file instead.")
    var queries: String?

    @OptionGroup var parameters: RetrievalOptions

    @Flag(name: .long, help: "Print one JSON object per answer: matchLength, occurrences, sampled, tokens, parents, counts.")
    var json = false

    func validate() throws {
        switch (directory, socket, datastore) {
        case (.some, nil, nil), (nil, .some, .some): break
        case (.some, _, _): throw ValidationError("give a datastore directory, or --socket with --datastore, not both")
        case (nil, .some, nil): throw ValidationError("--socket needs --datastore NAME (the daemon's name for it)")
        default: throw ValidationError("give a datastore directory, or --socket S --datastore NAME")
        }
        guard (context == nil) != (queries == nil) else {
            throw ValidationError("give either --context or --queries")
        }
    }

    func run() async throws {
        let parameters = parameters.value
        let retrieve: (_ context: [UInt32], _ answer: inout CandidateTrie) throws -> Void
        if let socket, let datastore {
            let client: RetrievalClient
            do { client = try RetrievalClient(socketPath: socket, clientName: "rasd-index query") } catch let error as ServiceError {
                throw InputError(error.description)
            }
            retrieve = { ids, answer in try client.retrieve(datastore: datastore, context: ids, parameters: parameters, into: &answer) }
        } else {
            let store = try Datastore(path: directory ?? "")
            var workspace = RetrievalWorkspace()
            retrieve = { ids, answer in try store.retrieve(context: ids, parameters: parameters, workspace: &workspace, into: &answer) }
        }

        var answer = CandidateTrie.empty
        guard let queries else {
            do {
                try retrieve(try TokenList.parse(context ?? "", option: "--context"), &answer)
            } catch let error as ServiceError {
                throw InputError(error.description)
            }
            print(describe(answer))
            return
        }
        for (line, ids) in try QueryFile.contexts(path: queries) {
            do {
                try retrieve(ids, &answer)
            } catch let error as DatastoreError where error.kind == .tokenOutOfRange {
                throw InputError("\(queries) line \(line): \(error.message)")
            } catch let error as ServiceError {
                throw InputError("\(queries) line \(line): \(error.description)")
            }
            print(describe(answer))
        }
    }

    private func describe(_ answer: CandidateTrie) -> String {
        if json { return Formatting.json(answer) }
        return "match length \(answer.matchLength), occurrences \(answer.occurrences)\(answer.sampled ? " (sampled)" : ""), \(answer.count) nodes\n"
            + Formatting.tree(answer)
    }
}

/// The contexts of a JSON-lines query file.
enum QueryFile {
    /// `(line number, context)` for every line that is not blank.
    static func contexts(path: String) throws -> [(Int, [UInt32])] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError("\(path): cannot read the query file")
        }
        struct Line: Decodable { var context: [UInt32] }
        let decoder = JSONDecoder()
        var out: [(Int, [UInt32])] = []
        for (i, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) {
            guard let parsed = try? decoder.decode(Line.self, from: Data(line)) else {
                throw InputError("\(path) line \(i + 1): expected a JSON object with \"context\": [token ids]")
            }
            out.append((i + 1, parsed.context))
        }
        return out
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

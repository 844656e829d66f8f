import RASDDatastore
import RASDService
import RASDTrees
import Synchronization

/// Retrieval through a `rasd-index serve` daemon: one named datastore behind a Unix socket,
/// answering exactly what the datastore answers in process.
///
/// The decoder asks from a helper thread while it drafts, one request at a time; the connection
/// is not thread-safe, so it sits behind a mutex. When the daemon goes away mid-decode,
/// ``retrieve(context:parameters:)`` throws and the decoder continues with the prompt alone
/// (its statistics carry a warning).
public final class DaemonRetrievalSource: RetrievalSource {
    /// The daemon's socket.
    public let socketPath: String
    /// The datastore's name in the daemon.
    public let datastore: String
    /// What the daemon said about the datastore when this source connected.
    public let remote: DatastoreDescription
    private let client: Mutex<RetrievalClient>

    /// Connects, and checks that the daemon serves `datastore` built with `expectedTokenizer`.
    ///
    /// - Throws: ``ServiceError`` when the daemon cannot be reached; ``DecodingError`` naming the
    ///   datastores the daemon has when `datastore` is not among them, or both tokenizers when
    ///   they differ.
    public init(socketPath: String, datastore: String, expectedTokenizer: TokenizerIdentity?) throws {
        let client = try RetrievalClient(socketPath: socketPath, clientName: "rasd-decode")
        let served = try client.datastores()
        guard let remote = served.first(where: { $0.name == datastore }) else {
            throw DecodingError(
                "the daemon at \(socketPath) has no datastore named '\(datastore)' (it serves: "
                    + "\(served.map(\.name).joined(separator: ", "))); use socket:\(socketPath)/NAME with one of those")
        }
        if let expectedTokenizer, let theirs = remote.tokenizer, theirs != "\(expectedTokenizer)" {
            throw DecodingError(
                "the datastore '\(datastore)' at \(socketPath) was built with the tokenizer \(theirs), but the model's is "
                    + "\(expectedTokenizer); rebuild it with this model's tokenizer or serve a matching one")
        }
        self.socketPath = socketPath
        self.datastore = datastore
        self.remote = remote
        self.client = Mutex(client)
    }

    /// Parses `socket:PATH/NAME` (the socket path, then the datastore's name after the last
    /// slash); nil when `spec` does not start with `socket:`.
    /// - Throws: ``DecodingError`` when the socket path or the name is missing.
    public static func parse(_ spec: String) throws -> (socketPath: String, datastore: String)? {
        guard spec.hasPrefix("socket:") else { return nil }
        let rest = spec.dropFirst("socket:".count)
        guard let slash = rest.lastIndex(of: "/"), slash != rest.startIndex, rest.index(after: slash) != rest.endIndex else {
            throw DecodingError("'\(spec)' is not socket:PATH/NAME (for example socket:/run/rasd.sock/code)")
        }
        return (String(rest[..<slash]), String(rest[rest.index(after: slash)...]))
    }

    public var sourceDescription: String { "socket:\(socketPath)/\(datastore)" }

    public func retrieve(context: [UInt32], parameters: RetrievalParameters) throws -> CandidateTrie {
        try client.withLock { try $0.retrieve(datastore: datastore, context: context, parameters: parameters) }
    }
}

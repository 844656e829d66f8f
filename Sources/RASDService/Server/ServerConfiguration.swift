import Logging
import RASDDatastore

/// How a ``RetrievalServer`` runs.
public struct ServerConfiguration: Sendable {
    /// Where the socket is created.
    public var socketPath: String
    /// Permission bits of the socket file (default 0600: only the daemon's user may connect).
    public var socketMode: UInt32 = 0o600
    /// The datastores to serve.
    public var datastores: [DatastoreSpec]
    /// Most connections served at once; more are refused with `too_many_connections`.
    public var maxConnections = 128
    /// Largest request payload accepted; larger frames are refused and the connection closed.
    public var maxFrameBytes = ServiceProtocol.defaultMaxFrameBytes
    /// Most contexts in one RETRIEVE_BATCH.
    public var maxBatchContexts = 4096
    /// Seconds a client may take to send the rest of a frame it has started, or to make room
    /// for a reply (a client that stops reading); then it is disconnected.
    public var ioTimeout: Double = 10
    /// Seconds an idle connection (no partial frame) is kept; nil keeps it forever.
    public var idleTimeout: Double?
    /// How much opening (and reopening) a datastore checks.
    public var openVerification: Datastore.OpenVerification = .checksums
    /// Where log lines go. Nothing is logged per request at `.info` and above.
    public var logger: Logger

    public init(socketPath: String, datastores: [DatastoreSpec], logger: Logger = Logger(label: "rasd.service")) {
        self.socketPath = socketPath
        self.datastores = datastores
        self.logger = logger
    }

    func validate() throws {
        guard !datastores.isEmpty else { throw ServerError(.noDatastores, "no datastores to serve") }
        var seen = Set<String>()
        for spec in datastores where !seen.insert(spec.name).inserted {
            throw ServerError(.invalidDatastoreSpec, "the datastore name \"\(spec.name)\" is given twice")
        }
        guard socketMode <= 0o777 else {
            throw ServerError(.invalidConfiguration, "socket mode \(String(socketMode, radix: 8)) is not a permission mode (000-777)")
        }
        guard maxConnections >= 1 else { throw ServerError(.invalidConfiguration, "maxConnections must be at least 1") }
        guard maxFrameBytes >= ServiceProtocol.minimumMaxFrameBytes, maxFrameBytes <= Int(UInt32.max) else {
            throw ServerError(.invalidConfiguration,
                "maxFrameBytes must be between \(ServiceProtocol.minimumMaxFrameBytes) and \(UInt32.max) (got \(maxFrameBytes))")
        }
        guard maxBatchContexts >= 1, maxBatchContexts <= ServiceProtocol.maxBatchContexts else {
            throw ServerError(.invalidConfiguration, "maxBatchContexts must be between 1 and \(ServiceProtocol.maxBatchContexts)")
        }
        guard ioTimeout > 0, ioTimeout <= 86_400 else {
            throw ServerError(.invalidConfiguration, "the I/O timeout must be between 0 and 86,400 seconds (got \(ioTimeout))")
        }
        if let idle = idleTimeout, !(idle > 0 && idle <= 31_536_000) {
            throw ServerError(.invalidConfiguration, "the idle timeout must be between 0 and 31,536,000 seconds (got \(idle))")
        }
    }
}

/// A datastore to serve: the name requests use and its directory.
public struct DatastoreSpec: Sendable, Hashable {
    /// The name requests use.
    public var name: String
    /// The datastore directory.
    public var path: String

    public init(name: String, path: String) {
        self.name = name
        self.path = path
    }

    /// Parses `NAME=PATH`, or `PATH` (named after its last path component).
    public init(parsing argument: String) throws {
        let name: Substring, path: Substring
        if let eq = argument.firstIndex(of: "=") {
            name = argument[..<eq]
            path = argument[argument.index(after: eq)...]
        } else {
            path = Substring(argument)
            name = path.split(separator: "/").last ?? ""
        }
        guard !path.isEmpty else {
            throw ServerError(.invalidDatastoreSpec, "--datastore \"\(argument)\" has no path")
        }
        guard !name.isEmpty, name.utf8.count <= 255, !name.contains(where: { $0.isWhitespace || $0 == "/" }) else {
            throw ServerError(.invalidDatastoreSpec,
                "--datastore \"\(argument)\": the name must be 1-255 bytes without spaces or slashes")
        }
        self.init(name: String(name), path: String(path))
    }
}

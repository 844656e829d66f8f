import RASDDatastore

/// An error starting or running the retrieval daemon, naming the socket or datastore concerned
/// and what to do. `description` is meant to be printed as is.
public struct ServerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// Another daemon is listening on the socket path.
        case socketInUse
        /// Something that is not a socket exists at the socket path.
        case notASocket
        /// The socket path is longer than the system allows.
        case socketPathTooLong
        /// A system call on the socket failed (permissions, a missing directory).
        case socket
        /// A `--datastore` argument is malformed or names a datastore twice.
        case invalidDatastoreSpec
        /// No datastore was given.
        case noDatastores
        /// A datastore failed to open at start.
        case datastore
        /// A configuration value is out of range.
        case invalidConfiguration
    }

    /// What went wrong.
    public var kind: Kind
    /// What happened.
    public var message: String
    /// The underlying datastore error, for ``Kind/datastore``.
    public var datastoreError: DatastoreError?

    public init(_ kind: Kind, _ message: String, datastoreError: DatastoreError? = nil) {
        self.kind = kind
        self.message = message
        self.datastoreError = datastoreError
    }

    public var description: String {
        let hint: String
        switch kind {
        case .socketInUse: hint = "stop that daemon first (SIGTERM), or choose another --socket"
        case .notASocket: hint = "remove it if it is stale, or choose another --socket"
        case .socketPathTooLong: hint = "choose a shorter --socket path (at most \(UnixSocket.maxPathBytes) bytes)"
        case .socket: hint = "check that the directory exists and is writable"
        case .invalidDatastoreSpec: hint = "pass --datastore NAME=PATH (or PATH, named after its directory), each name once"
        case .noDatastores: hint = "pass at least one --datastore NAME=PATH"
        case .datastore: return message  // the datastore error carries its own hint
        case .invalidConfiguration: hint = "see `rasd-index serve --help`"
        }
        return "\(message) (\(hint))"
    }
}

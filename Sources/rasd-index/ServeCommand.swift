import ArgumentParser
import Logging
import RASDService

/// `rasd-index serve --socket S --datastore NAME=PATH ...`: the retrieval daemon.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve datastores to other processes over a Unix-domain socket (the retrieval daemon).",
        discussion: """
            Opens every datastore (one log line each), then creates the socket: the daemon is ready when \
            the socket file exists. SIGTERM or SIGINT stops accepting, finishes the requests in flight, \
            removes the socket and exits 0; SIGHUP reopens datastores whose files changed (a rebuilt one \
            is picked up; requests in flight finish on the old one). The protocol is in docs/protocol.md; \
            clients: RASDService.RetrievalClient (Swift) and clients/python (Python).
            """)

    @Option(name: .long, help: "Path of the socket to create.")
    var socket: String

    @Option(name: .long, help: ArgumentHelp("A datastore to serve, as NAME=PATH or PATH (named after its directory); repeatable.", valueName: "name=path"))
    var datastore: [String] = []

    @Option(name: .long, help: "Permission bits of the socket file, in octal (0600: only this user may connect).")
    var socketMode = "0600"

    @Option(name: .long, help: "Most connections served at once.")
    var maxConnections = 128

    @Option(name: .long, help: "Largest request payload accepted, in bytes.")
    var maxFrameBytes = ServiceProtocol.defaultMaxFrameBytes

    @Option(name: .long, help: "Most contexts in one batch request.")
    var maxBatch = 4096

    @Option(name: .long, help: "Seconds a client may take to finish sending a frame or to read its replies before it is dropped.")
    var ioTimeout = 10.0

    @Option(name: .long, help: "Close connections idle for this many seconds (default: never).")
    var idleTimeout: Double?

    @Flag(name: .long, help: "Open datastores without re-reading every checksum (for datastores verified before).")
    var skipChecksums = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard !datastore.isEmpty else { throw ValidationError("give at least one --datastore NAME=PATH") }
        guard UInt32(socketMode, radix: 8).map({ $0 <= 0o777 }) == true else {
            throw ValidationError("--socket-mode \(socketMode) is not an octal permission mode such as 0600 or 0660")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var configuration = ServerConfiguration(
            socketPath: socket, datastores: try datastore.map { try DatastoreSpec(parsing: $0) },
            logger: Logger(label: "rasd.serve"))
        configuration.socketMode = UInt32(socketMode, radix: 8) ?? 0o600
        configuration.maxConnections = maxConnections
        configuration.maxFrameBytes = maxFrameBytes
        configuration.maxBatchContexts = maxBatch
        configuration.ioTimeout = ioTimeout
        configuration.idleTimeout = idleTimeout
        configuration.openVerification = skipChecksums ? .smallTables : .checksums
        do {
            let server = try RetrievalServer(configuration: configuration)
            ServiceSignals.install(for: server)
            try server.run()
        } catch let error as ServerError {
            throw InputError(error.description)
        }
    }
}

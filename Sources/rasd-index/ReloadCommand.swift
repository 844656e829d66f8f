import ArgumentParser
import RASDService

/// `rasd-index reload --socket S [--datastore NAME]`: reopen rebuilt datastores in a running daemon.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a running daemon reopen the datastores whose files changed (same as SIGHUP).",
        discussion: "Requests in flight finish on the old version. A datastore that fails to reopen keeps serving its previous version, and the command fails naming it.")

    @Option(name: .long, help: "The daemon's socket.")
    var socket: String

    @Option(name: .long, help: "Reload only this datastore (by name).")
    var datastore: String?

    func run() throws {
        do {
            let client = try RetrievalClient(socketPath: socket, clientName: "rasd-index reload")
            for outcome in try client.reload(datastore: datastore) {
                print("\(outcome.name): \(outcome.status.rawValue) (generation \(outcome.generation))")
            }
        } catch let error as ServiceError {
            throw InputError(error.description)
        }
    }
}

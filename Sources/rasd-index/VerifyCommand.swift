import ArgumentParser
import Foundation
import RASDDatastore

/// `rasd-index verify <datastore>`: re-check every byte of a datastore.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-check every checksum, the index's counters and tables, and the index against its stored text.",
        discussion: "Exits with status 1 and lists what is wrong when the datastore is damaged.")

    @Argument(help: "The datastore directory.")
    var datastore: String

    @Flag(name: .long, help: "Walk the whole text instead of samples from every anchor (slower).")
    var full = false

    @Option(name: .long, help: "Symbols walked from each anchor.")
    var walk = 4096

    func run() async throws {
        let store = try Datastore(path: datastore)
        let report = store.verify(walkSteps: full ? nil : walk) { line in
            FileHandle.standardError.write(Data(("verify: " + line + "\n").utf8))
        }
        if report.isClean {
            print("ok: \(report.valuesChecked) values (\(Formatting.bytes(report.bytesChecked))) match their checksums; "
                + "counters, node tables and \(report.rowsWalked) rows of the index agree with the stored text")
        } else {
            for p in report.problems { print("damaged: \(p)") }
            print("\(datastore) is damaged; rebuild it")
            throw ExitCode(1)
        }
    }
}

import Foundation
import Logging
import RASDDatastore

#if canImport(Glibc)
import Glibc
#endif

/// The open datastores by name, swapped atomically on reload.
///
/// A request looks its datastore up once and keeps the reference for its whole duration, so a
/// reload never changes the datastore under a running request: in-flight requests finish on the
/// old version, which is closed when the last of them lets go of it.
package final class DatastoreRegistry: Sendable {
    /// One open datastore version.
    package final class Entry: Sendable {
        let name: String
        let path: String
        package let datastore: Datastore
        let identity: StoreIdentity
        let generation: Int
        let openedAt: Date
        let bytesOnDisk: Int

        init(name: String, path: String, datastore: Datastore, identity: StoreIdentity, generation: Int) {
            self.name = name
            self.path = path
            self.datastore = datastore
            self.identity = identity
            self.generation = generation
            self.openedAt = Date()
            self.bytesOnDisk = datastore.info.bytesOnDisk
        }

        var description: DatastoreDescription {
            let h = datastore.header
            return DatastoreDescription(
                name: name, path: path, vocabularySize: h.vocabularySize, tokens: h.tokens, documents: h.documents,
                bytesOnDisk: bytesOnDisk, tokenizer: h.tokenizer.map { "\($0)" }, generation: generation,
                openedAt: ISO8601DateFormatter().string(from: openedAt))
        }
    }

    /// What identifies the files of an open datastore: a rebuilt datastore is renamed into
    /// place, so its data file has a new inode.
    struct StoreIdentity: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: Int64

        init?(path: String) {
            var info = stat()
            guard stat(path + "/data.mdb", &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        }
    }

    private let entries: Locked<[String: Entry]>
    private let order: [String]
    /// Serialises reloads, so that two reloads never open the same new version twice.
    private let reloading = Locked(())
    private let verification: Datastore.OpenVerification
    private let logger: Logger

    /// Opens every datastore, logging one line each; the first failure is thrown.
    package init(specs: [DatastoreSpec], verification: Datastore.OpenVerification, logger: Logger) throws {
        self.verification = verification
        self.logger = logger
        var opened: [String: Entry] = [:]
        for spec in specs {
            let entry: Entry
            do {
                entry = try Self.open(spec, generation: 1, reusing: Array(opened.values), verification: verification, logger: logger)
            } catch let error as DatastoreError {
                throw ServerError(.datastore, "datastore \"\(spec.name)\": \(error)", datastoreError: error)
            }
            opened[spec.name] = entry
        }
        entries = Locked(opened)
        order = specs.map(\.name)
    }

    /// Opens `spec`, sharing the `Datastore` of an entry with the same files.
    private static func open(
        _ spec: DatastoreSpec, generation: Int, reusing others: [Entry], verification: Datastore.OpenVerification,
        logger: Logger
    ) throws -> Entry {
        let start = DispatchTime.now().uptimeNanoseconds
        let identity = StoreIdentity(path: spec.path)
        if let identity, let twin = others.first(where: { $0.identity == identity }) {
            return Entry(name: spec.name, path: spec.path, datastore: twin.datastore, identity: identity, generation: generation)
        }
        let datastore = try Datastore(path: spec.path, verification: verification)
        // Take the identity again after opening: the files that were opened are the ones now there
        // unless a rebuild raced the open, which the next reload then picks up.
        guard let opened = StoreIdentity(path: spec.path) ?? identity else {
            throw DatastoreError(.notFound, path: spec.path, "the datastore disappeared while it was opened")
        }
        let entry = Entry(name: spec.name, path: spec.path, datastore: datastore, identity: opened, generation: generation)
        let h = datastore.header
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        logger.info(
            "opened datastore",
            metadata: [
                "datastore": "\(spec.name)", "path": "\(spec.path)", "tokens": "\(h.tokens)", "documents": "\(h.documents)",
                "vocabulary": "\(h.vocabularySize)", "bytes": "\(entry.bytesOnDisk)", "generation": "\(generation)",
                "ms": "\(String(format: "%.1f", milliseconds))",
            ])
        return entry
    }

    /// The current version of the datastore called `name`.
    @inline(__always)
    package func entry(_ name: String) -> Entry? {
        entries.withLock { $0[name] }
    }

    /// Every datastore, in the order given at start.
    func all() -> [Entry] {
        entries.withLock { map in order.compactMap { map[$0] } }
    }

    /// The names, in the order given at start.
    var names: [String] { order }

    /// Reopens the datastores whose files changed (all of them, or the one called `name`).
    ///
    /// A datastore that fails to reopen keeps serving its previous version and is reported as
    /// `failed`; the others are still reloaded.
    package func reload(name: String?) throws -> [ReloadOutcome] {
        if let name, entry(name) == nil {
            throw ServiceError(.unknownDatastore, "no datastore named \"\(name)\" (open: \(order.joined(separator: ", ")))")
        }
        return reloading.withLock { _ in
            var outcomes: [ReloadOutcome] = []
            var fresh: [Entry] = []
            for current in all() where name == nil || current.name == name {
                let spec = DatastoreSpec(name: current.name, path: current.path)
                if let identity = StoreIdentity(path: current.path), identity == current.identity {
                    outcomes.append(ReloadOutcome(name: current.name, path: current.path, status: .unchanged, generation: current.generation))
                    continue
                }
                do {
                    // Another name for the same files may already hold the new version (reloaded on
                    // its own before): share it, as at start. LMDB forbids opening one environment
                    // twice in a process (closing either copy drops the other's locks).
                    let next = try Self.open(
                        spec, generation: current.generation + 1, reusing: fresh + all(), verification: verification, logger: logger)
                    fresh.append(next)
                    entries.withLock { $0[current.name] = next }
                    outcomes.append(ReloadOutcome(name: current.name, path: current.path, status: .reloaded, generation: next.generation))
                } catch {
                    logger.error(
                        "reload failed; the previous version keeps serving",
                        metadata: ["datastore": "\(current.name)", "error": "\(error)"])
                    outcomes.append(ReloadOutcome(
                        name: current.name, path: current.path, status: .failed, generation: current.generation,
                        error: "\(error)"))
                }
            }
            return outcomes
        }
    }
}

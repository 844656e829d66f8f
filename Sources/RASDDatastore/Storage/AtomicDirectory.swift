import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds happen in a hidden sibling directory and are moved into place in one step.
///
/// A new datastore is renamed to its name; one that replaces another is swapped with it by
/// `renameat2(RENAME_EXCHANGE)`, so a reader opening the name sees the old datastore or the new
/// one, never neither. Readers that already have the old one open keep reading it (its files stay
/// alive until they close them).
enum AtomicDirectory {
    static let partialMarker = ".partial-"

    static func createParent(_ parent: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw DatastoreError.system("cannot create the directory", path: parent, errno: errnoOf(error))
        }
    }

    /// A new work directory `<parent>/.<name>.partial-<pid>-<n>`.
    static func makePartial(in parent: String, name: String) throws -> String {
        let path = "\(parent)/.\(name)\(partialMarker)\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(path, 0o755) == 0 else {
            throw DatastoreError.system("cannot create a work directory next to the datastore", path: path)
        }
        return path
    }

    /// Removes work directories of earlier builds of `name` whose process is gone (killed builds).
    static func removeStalePartials(in parent: String, name: String) {
        let prefix = ".\(name)\(partialMarker)"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            let rest = entry.dropFirst(prefix.count)
            guard let pid = Int32(rest.split(separator: "-").first ?? "") else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: "\(parent)/\(entry)")
            }
        }
    }

    /// Moves `work` to `target`. With `replace`, an existing `target` is swapped out and removed.
    static func install(_ work: String, at target: String, replace: Bool) throws {
        if rename(work, target) == 0 {
            syncDirectory(of: target)
            return
        }
        let e = errno
        guard (e == EEXIST || e == ENOTEMPTY), replace else {
            if e == EEXIST || e == ENOTEMPTY {
                throw DatastoreError(.alreadyExists, path: target, "a datastore appeared here during the build")
            }
            throw DatastoreError.system("cannot move the new datastore into place", path: target, errno: e)
        }
        if exchange(work, target) {
            // `work` now names the old datastore.
            try? FileManager.default.removeItem(atPath: work)
            syncDirectory(of: target)
            return
        }
        // No atomic exchange on this file system: move the old one aside, then the new one in.
        let aside = work + ".old"
        guard rename(target, aside) == 0 else {
            throw DatastoreError.system("cannot move the old datastore aside", path: target)
        }
        guard rename(work, target) == 0 else {
            let e2 = errno
            _ = rename(aside, target)
            throw DatastoreError.system("cannot move the new datastore into place", path: target, errno: e2)
        }
        try? FileManager.default.removeItem(atPath: aside)
        syncDirectory(of: target)
    }

    /// `renameat2(RENAME_EXCHANGE)`, looked up at run time (glibc declares it only for _GNU_SOURCE).
    private static func exchange(_ a: String, _ b: String) -> Bool {
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let renameExchange: UInt32 = 1 << 1
        return renameat2(AT_FDCWD, a, AT_FDCWD, b, renameExchange) == 0
    }

    private static func syncDirectory(of path: String) {
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let fd = open(parent, O_RDONLY | O_DIRECTORY)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    private static func errnoOf(_ error: Error) -> Int32 {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return Int32(underlying.code)
        }
        return ns.domain == NSPOSIXErrorDomain ? Int32(ns.code) : EIO
    }
}

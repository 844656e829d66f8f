import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file of a corpus, as listed before reading.
public struct CorpusFile: Sendable, Equatable {
    /// Path relative to the corpus root (`/`-separated); the sort key of the corpus order.
    public var relativePath: String
    /// Path to open.
    public var path: String
    /// Size in bytes at listing time.
    public var byteCount: Int
    /// Why the file cannot be read, found while listing (a dangling link, say).
    public var problem: String?
}

extension CorpusSource {
    /// The files of the corpus, sorted by the bytes of their relative paths (so the order does
    /// not depend on the file system or the locale).
    ///
    /// Hidden files and directories (names starting with `.`) are left out; symbolic links to
    /// files are followed, links to directories are not (no cycles).
    /// - Throws: ``CorpusError`` `.notFound` when the root does not exist.
    public func listFiles() throws -> [CorpusFile] {
        var info = stat()
        guard stat(root, &info) == 0 else {
            throw CorpusError(.notFound, root, String(cString: strerror(errno)))
        }
        var files: [CorpusFile] = []
        if (info.st_mode & S_IFMT) == S_IFDIR {
            try walk(directory: root, relative: "", into: &files)
        } else {
            files.append(CorpusFile(relativePath: (root as NSString).lastPathComponent, path: root, byteCount: Int(info.st_size), problem: nil))
        }
        files.sort { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
        return files
    }

    private func selected(_ relative: String) -> Bool {
        (include.isEmpty || include.contains { $0.matches(relative) }) && !exclude.contains { $0.matches(relative) }
    }

    private func walk(directory: String, relative: String, into files: inout [CorpusFile]) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            // An unreadable subdirectory is reported like an unreadable file; the root must list.
            if relative.isEmpty { throw CorpusError(.notFound, directory, "cannot list the directory: \(error.localizedDescription)") }
            if selected(relative) || include.isEmpty {
                files.append(CorpusFile(relativePath: relative, path: directory, byteCount: 0, problem: "cannot list the directory"))
            }
            return
        }
        for name in names where !name.hasPrefix(".") {
            let path = directory + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var link = stat()
            guard lstat(path, &link) == 0 else { continue }  // vanished since listing
            let type = link.st_mode & S_IFMT
            if type == S_IFDIR {
                try walk(directory: path, relative: rel, into: &files)
                continue
            }
            guard selected(rel) else { continue }
            if type == S_IFREG {
                files.append(CorpusFile(relativePath: rel, path: path, byteCount: Int(link.st_size), problem: nil))
            } else if type == S_IFLNK {
                var target = stat()
                if stat(path, &target) != 0 {
                    files.append(CorpusFile(relativePath: rel, path: path, byteCount: 0, problem: "symbolic link to a missing file (\(String(cString: strerror(errno))))"))
                } else if (target.st_mode & S_IFMT) == S_IFREG {
                    files.append(CorpusFile(relativePath: rel, path: path, byteCount: Int(target.st_size), problem: nil))
                }
            }
        }
    }
}

/// Reads a whole file into memory.
func readFile(_ path: String, expectedSize: Int) -> Result<[UInt8], CorpusFileError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(CorpusFileError(message: String(cString: strerror(errno)))) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return .failure(CorpusFileError(message: String(cString: strerror(errno)))) }
    let size = Int(info.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = bytes.withUnsafeMutableBytes { raw in
            read(fd, raw.baseAddress.map { $0 + done }, size - done)
        }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(CorpusFileError(message: String(cString: strerror(errno))))
        }
        if n == 0 { break }  // shrank while reading
        done += n
    }
    if done < size { bytes.removeLast(size - done) }
    return .success(bytes)
}

struct CorpusFileError: Error {
    var message: String
}

import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's listening socket file.
///
/// The socket is bound under a temporary name next to the final path, given its mode, put into
/// the listening state and only then renamed to the final path: the path appears atomically,
/// already accepting connections and with the right permissions, so "ready when the socket
/// exists" holds. A socket file left by a dead daemon is replaced; one a live daemon listens on
/// is never taken over.
final class ListeningSocket: Sendable {
    let fd: Int32
    let path: String
    /// The socket file as created, so that shutdown removes it only if it is still ours.
    private let identity: UnixSocket.FileIdentity?

    init(path: String, mode: UInt32, backlog: Int32 = 128, logger: Logger) throws {
        self.path = path
        guard path.utf8.count <= UnixSocket.maxPathBytes else {
            throw ServerError(.socketPathTooLong, "the socket path \(path) is \(path.utf8.count) bytes long")
        }
        try Self.checkExisting(path, logger: logger)

        let fd = UnixSocket.makeSocket()
        guard fd >= 0 else { throw ServerError(.socket, "cannot create a socket: \(UnixSocket.reason(errno))") }
        // The temporary name must fit in sun_path too; a long final path binds directly instead
        // (removing a stale file first), which only loses the atomic appearance.
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let temporary = (slash == nil ? "" : directory + "/") + ".rasd-\(getpid()).sock.tmp"
        let bindPath = temporary.utf8.count <= UnixSocket.maxPathBytes ? temporary : path
        unlink(bindPath)
        let bound = UnixSocket.withAddress(bindPath) { bind(fd, $0, $1) } ?? -1
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw ServerError(.socket, "cannot create the socket \(bindPath): \(UnixSocket.reason(e))")
        }
        guard chmod(bindPath, mode_t(mode)) == 0, listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            unlink(bindPath)
            throw ServerError(.socket, "cannot set up the socket \(bindPath): \(UnixSocket.reason(e))")
        }
        if bindPath != path {
            guard rename(bindPath, path) == 0 else {
                let e = errno
                close(fd)
                unlink(bindPath)
                throw ServerError(.socket, "cannot move the socket into place at \(path): \(UnixSocket.reason(e))")
            }
        }
        // Non-blocking, so that a client that goes away between poll and accept cannot block the
        // accept loop (accepted sockets do not inherit the flag).
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        self.fd = fd
        identity = UnixSocket.identity(of: path)?.0
    }

    /// Refuses a path that a live daemon listens on or that is not a socket; removes nothing
    /// (a stale socket is replaced by the rename, or removed just before a direct bind).
    private static func checkExisting(_ path: String, logger: Logger) throws {
        guard let (_, mode) = UnixSocket.identity(of: path) else { return }
        guard mode & S_IFMT == S_IFSOCK else {
            throw ServerError(.notASocket, "\(path) exists and is not a socket")
        }
        switch UnixSocket.connect(to: path) {
        case .success(let fd):
            close(fd)
            throw ServerError(.socketInUse, "a daemon is already listening on \(path)")
        case .failure(.system(ECONNREFUSED)):
            logger.info("replacing a stale socket file (no daemon listens on it)", metadata: ["socket": "\(path)"])
        case .failure(.system(let e)):
            throw ServerError(.socket, "\(path) exists and cannot be probed: \(UnixSocket.reason(e))")
        case .failure(.pathTooLong):
            throw ServerError(.socketPathTooLong, "the socket path \(path) is too long")
        }
    }

    /// Removes the socket file if it is still the one this daemon created.
    func removeFile() {
        if let identity, let (current, _) = UnixSocket.identity(of: path), current == identity {
            unlink(path)
        }
    }

    func closeSocket() { close(fd) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `connect(2)`, under a name that the wrapper's own `connect(to:)` does not shadow.
private let systemConnect = connect

/// Thin wrappers over the POSIX calls for Unix-domain stream sockets, with errors that name the
/// socket path and the system's reason.
enum UnixSocket {
    #if canImport(Glibc)
    static let streamType = Int32(SOCK_STREAM.rawValue)
    #else
    static let streamType = SOCK_STREAM
    #endif

    /// Most bytes of a socket path (`sun_path` holds a terminating zero).
    static var maxPathBytes: Int { MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1 }

    /// The system's text for `code`.
    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Calls `body` with the address of `path`; nil when the path is too long.
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        let utf8 = Array(path.utf8)
        guard !utf8.isEmpty, utf8.count <= maxPathBytes else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: utf8)
            raw[utf8.count] = 0
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// A new stream socket, close-on-exec.
    static func makeSocket() -> Int32 {
        let fd = socket(AF_UNIX, streamType, 0)
        if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fd
    }

    /// Connects to `path`; returns the socket or the errno of the failure.
    static func connect(to path: String) -> Result<Int32, ConnectFailure> {
        let fd = makeSocket()
        guard fd >= 0 else { return .failure(.system(errno)) }
        let rc = withAddress(path) { address, length -> Int32 in
            while true {
                if systemConnect(fd, address, length) == 0 { return 0 }
                if errno != EINTR { return errno }
            }
        }
        guard let rc else {
            close(fd)
            return .failure(.pathTooLong)
        }
        if rc != 0 {
            close(fd)
            return .failure(.system(rc))
        }
        #if canImport(Darwin)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        return .success(fd)
    }

    enum ConnectFailure: Error {
        case pathTooLong
        case system(Int32)
    }

    /// Sets the receive and send timeouts (`SO_RCVTIMEO`, `SO_SNDTIMEO`); 0 or less means none.
    static func setTimeouts(_ fd: Int32, receive: Double, send: Double) {
        func interval(_ seconds: Double) -> timeval {
            guard seconds > 0 else { return timeval() }
            let whole = seconds.rounded(.down)
            var t = timeval()
            t.tv_sec = .init(whole)
            t.tv_usec = .init(max(Int((seconds - whole) * 1_000_000), whole == 0 ? 1 : 0))
            return t
        }
        var r = interval(receive), s = interval(send)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends every byte. Returns nil on success, else the errno (`EAGAIN` after a send timeout,
    /// `EPIPE` when the peer has gone).
    static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var sent = 0
        while sent < bytes.count {
            let n = send(fd, bytes.baseAddress.unsafelyUnwrapped + sent, bytes.count - sent, sendFlags)
            if n > 0 {
                sent += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return n == 0 ? EPIPE : errno
            }
        }
        return nil
    }

    #if canImport(Glibc)
    static let sendFlags = Int32(MSG_NOSIGNAL)
    #else
    static let sendFlags: Int32 = 0
    #endif

    /// One `recv` into `buffer`: bytes read (0 at end of stream), or minus the errno.
    static func receive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        while true {
            let n = recv(fd, buffer, count, 0)
            if n >= 0 { return n }
            if errno != EINTR { return -Int(errno) }
        }
    }

    /// Device and inode of a file, to tell whether a path still names the file we created.
    struct FileIdentity: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    /// The identity of `path` (not following a final symlink), with its `st_mode`.
    static func identity(of path: String) -> (FileIdentity, mode_t)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)), info.st_mode)
    }
}

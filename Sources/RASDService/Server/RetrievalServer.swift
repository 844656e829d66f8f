import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The retrieval daemon: serves datastores over a Unix-domain socket (`docs/protocol.md`).
///
/// One thread per connection with blocking sockets, at most
/// ``ServerConfiguration/maxConnections`` at once. On this kind of workload (a retrieval is
/// tens of microseconds of CPU, clients are few and local) that is the lowest-latency design:
/// a request is read, answered and written by one thread with no hand-offs.
///
/// ```swift
/// let server = try RetrievalServer(configuration: ServerConfiguration(
///     socketPath: "/run/rasd.sock", datastores: [DatastoreSpec(name: "code", path: "indexes/code")]))
/// ServiceSignals.install(for: server)   // SIGTERM/SIGINT stop it, SIGHUP reloads
/// try server.run()                       // returns after shutdown()
/// ```
public final class RetrievalServer: Sendable {
    let core: ServerCore

    private struct State {
        var listener: ListeningSocket?
        var connections = Set<Int32>()
        var stopping = false
    }

    private let state = Locked(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let connectionThreads = DispatchGroup()
    private let listening = DispatchSemaphore(value: 0)

    /// Opens every datastore (logging one line each); the socket is created by ``run()``.
    ///
    /// - Throws: ``ServerError`` for a bad configuration or a datastore that fails to open.
    public init(configuration: ServerConfiguration) throws {
        core = try ServerCore(configuration: configuration)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ServerError(.socket, "cannot create a pipe: \(UnixSocket.reason(errno))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// The configuration it runs with.
    public var configuration: ServerConfiguration { core.configuration }

    /// Creates the socket and serves until ``shutdown()``; then stops accepting, removes the
    /// socket file, lets in-flight requests finish (and answers requests already received),
    /// and returns.
    ///
    /// - Throws: ``ServerError`` when the socket cannot be created (a live daemon holds the
    ///   path, the path is not a socket, permissions).
    public func run() throws {
        let listener = try ListeningSocket(
            path: configuration.socketPath, mode: configuration.socketMode, logger: core.logger)
        let stopEarly = state.withLock { s -> Bool in
            s.listener = listener
            return s.stopping
        }
        core.logger.info(
            "listening",
            metadata: [
                "socket": "\(configuration.socketPath)", "mode": "\(String(configuration.socketMode, radix: 8))",
                "datastores": "\(core.registry.names.joined(separator: ","))",
                "maxConnections": "\(configuration.maxConnections)", "maxFrameBytes": "\(configuration.maxFrameBytes)",
                "pid": "\(getpid())",
            ])
        listening.signal()
        if !stopEarly { acceptLoop(listener) }

        // Stop accepting: the path disappears first, so no new client finds a dead socket.
        listener.removeFile()
        listener.closeSocket()
        let open = state.withLock { s -> Int in
            // Close the read side: a thread blocked waiting for a request wakes up, requests
            // already received are still read and answered, and replies still go out.
            for fd in s.connections { Glibc.shutdown(fd, Int32(SHUT_RD)) }
            return s.connections.count
        }
        if open > 0 {
            core.logger.info("finishing in-flight requests", metadata: ["connections": "\(open)"])
        }
        // A client that stops reading holds its thread for at most the I/O timeout; a backlog
        // that is still being answered keeps the server waiting for as long as it moves.
        var answered = core.metrics.snapshot().answeredRequests
        while connectionThreads.wait(timeout: .now() + configuration.ioTimeout + 1) == .timedOut {
            let now = core.metrics.snapshot().answeredRequests
            if now == answered {
                core.logger.warning("some connections made no progress for the I/O timeout; exiting anyway")
                break
            }
            answered = now
        }
        core.logger.info("stopped", metadata: ["socket": "\(configuration.socketPath)"])
    }

    /// Asks ``run()`` to stop. Safe from any thread, any number of times.
    public func shutdown() {
        let first = state.withLock { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        if first {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    /// Removes the socket file now (for an immediate exit on a second signal).
    public func removeSocketFile() {
        state.withLock { $0.listener }?.removeFile()
    }

    /// Waits until ``run()`` listens (for callers that run the server on another thread).
    /// Returns false on timeout.
    public func waitUntilListening(timeout: Double) -> Bool {
        guard listening.wait(timeout: .now() + timeout) == .success else { return false }
        listening.signal()  // later waiters return at once too
        return true
    }

    /// Reopens the datastores whose files changed (see ``ReloadOutcome``); requests in flight
    /// finish on the version they started with.
    public func reload(datastore: String? = nil) throws -> [ReloadOutcome] {
        try core.reload(name: datastore)
    }

    /// The daemon's counters, datastores and memory.
    public func stats() -> ServiceStats { core.stats() }

    // MARK: Accepting

    private func acceptLoop(_ listener: ListeningSocket) {
        var fds = [
            pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                core.logger.error("poll failed; stopping", metadata: ["error": "\(UnixSocket.reason(errno))"])
                return
            }
            if fds[1].revents != 0 { return }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let client = accept(listener.fd, nil, nil)
            if client < 0 {
                let e = errno
                if e == EMFILE || e == ENFILE {
                    core.logger.warning("out of file descriptors; pausing accepts", metadata: ["error": "\(UnixSocket.reason(e))"])
                    usleep(10_000)
                }
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            admit(client)
        }
    }

    private func admit(_ fd: Int32) {
        let admitted = state.withLock { s -> Bool in
            guard s.connections.count < configuration.maxConnections else { return false }
            s.connections.insert(fd)
            return true
        }
        guard admitted else {
            refuse(fd)
            return
        }
        core.metrics.connections.withLock {
            $0.accepted += 1
            $0.open += 1
        }
        UnixSocket.setTimeouts(fd, receive: configuration.idleTimeout ?? 0, send: configuration.ioTimeout)
        connectionThreads.enter()
        let thread = Thread { [self] in
            let connection = Connection(fd: fd, core: core)
            core.metrics.register(connection.metrics)
            connection.run()
            core.metrics.retire(connection.metrics)
            // Forget the descriptor before closing it, so shutdown never touches a reused one.
            state.withLock { _ = $0.connections.remove(fd) }
            close(fd)
            core.metrics.connections.withLock { $0.open -= 1 }
            connectionThreads.leave()
        }
        thread.stackSize = 1 << 20
        thread.name = "rasd-connection"
        thread.start()
    }

    /// Tells a client over the limit why, then closes.
    private func refuse(_ fd: Int32) {
        core.metrics.connections.withLock { $0.rejected += 1 }
        let error = ServiceError(.tooManyConnections,
            "the server already serves its limit of \(configuration.maxConnections) connections")
        core.metrics.unattached.recordConnectionError(error.code)
        var w = WireWriter()
        w.appendErrorFrame(error, requestID: 0)
        UnixSocket.setTimeouts(fd, receive: 0, send: 0.1)
        _ = w.bytes.withUnsafeBytes { UnixSocket.sendAll(fd, $0) }
        close(fd)
        core.logger.debug("refused a connection over the limit")
    }
}

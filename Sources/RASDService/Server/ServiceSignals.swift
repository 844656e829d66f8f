import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Write end of the pipe signal handlers report to (a handler may only do async-signal-safe
/// work: it writes the signal number, and a thread acts on it).
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

/// Signal handling for a daemon process.
public enum ServiceSignals {
    /// Routes signals to `server`: SIGTERM and SIGINT shut it down gracefully (a second one
    /// removes the socket and exits at once with status 1), SIGHUP reloads every datastore.
    /// SIGPIPE is ignored (a client that goes away is an error on its connection only).
    /// Call once per process, before ``RetrievalServer/run()``.
    public static func install(for server: RetrievalServer) {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        signalPipeWrite = fds[1]
        let readEnd = fds[0]
        let logger = server.core.logger
        // Reloads run here, not on the signal thread: opening and checking a large datastore
        // takes seconds, and a SIGTERM meanwhile must still be heard. One at a time, in order.
        let reloads = DispatchQueue(label: "rasd.signals.reload")
        let thread = Thread {
            var stopping = false
            while true {
                var byte: UInt8 = 0
                let n = read(readEnd, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { return }
                let signo = Int32(byte)
                switch signo {
                case SIGHUP:
                    logger.info("SIGHUP: reloading datastores")
                    reloads.async {
                        let outcomes = (try? server.reload()) ?? []
                        for o in outcomes {
                            logger.info("reload", metadata: ["datastore": "\(o.name)", "status": "\(o.status.rawValue)", "generation": "\(o.generation)"])
                        }
                    }
                case SIGTERM, SIGINT:
                    if stopping {
                        logger.warning("second signal: exiting without waiting for in-flight requests")
                        server.removeSocketFile()
                        exit(1)
                    }
                    stopping = true
                    logger.info("shutting down", metadata: ["signal": "\(signo == SIGTERM ? "SIGTERM" : "SIGINT")"])
                    server.shutdown()
                default:
                    break
                }
            }
        }
        thread.name = "rasd-signals"
        thread.start()
        for signo in [SIGTERM, SIGINT, SIGHUP] {
            signal(signo) { signo in
                var byte = UInt8(truncatingIfNeeded: signo)
                _ = write(signalPipeWrite, &byte, 1)
            }
        }
    }
}

import Foundation
import Logging
import RASDDatastore
import RASDService
import RASDTrees
import RASDTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Contexts drawn from the corpus (so that they match), with random tails and lengths.
func sampleContexts(_ documents: [[UInt32]], count: Int, vocabulary: Int, seed: UInt64) -> [[UInt32]] {
    var rng = Xoshiro256(seed: seed)
    let nonEmpty = documents.filter { $0.count >= 4 }
    return (0..<count).map { i in
        if i % 7 == 6 { return [] }
        let doc = nonEmpty[Int(rng.next() % UInt64(nonEmpty.count))]
        let end = 1 + Int(rng.next() % UInt64(doc.count))
        let start = max(0, end - 1 - Int(rng.next() % 20))
        var context = Array(doc[start..<end])
        if i % 5 == 4 { context.append(UInt32(rng.next() % UInt64(vocabulary))) }
        return context
    }
}

let testVocabulary = 300

/// A datastore built for a test, with its in-process twin for reference answers.
struct TestDatastore {
    let path: String
    let documents: [[UInt32]]
    let store: Datastore

    init(at path: String, seed: UInt64, documents count: Int = 400, force: Bool = false) throws {
        self.path = path
        documents = phraseCorpus(seed: seed, documents: count, vocabulary: testVocabulary)
        try buildDatastore(documents, at: path, vocabulary: testVocabulary, force: force)
        store = try Datastore(path: path)
    }
}

/// A `RetrievalServer` running in this process on a background thread.
final class InProcessServer: @unchecked Sendable {
    let server: RetrievalServer
    let socketPath: String
    private let finished = DispatchSemaphore(value: 0)

    init(socketPath: String, datastores: [DatastoreSpec], configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
        var configuration = ServerConfiguration(
            socketPath: socketPath, datastores: datastores, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        configure(&configuration)
        server = try RetrievalServer(configuration: configuration)
        self.socketPath = socketPath
        let thread = Thread { [server, finished] in
            do { try server.run() } catch { print("server failed: \(error)") }
            finished.signal()
        }
        thread.start()
        guard server.waitUntilListening(timeout: 10) else { throw ServiceError(.cannotConnect, "the test server did not start") }
    }

    func client(timeout: Double = 30) throws -> RetrievalClient {
        try RetrievalClient(socketPath: socketPath, clientName: "test", timeout: timeout)
    }

    /// Shuts down and waits for `run()` to return.
    func stop() {
        server.shutdown()
        _ = finished.wait(timeout: .now() + 30)
    }
}

/// A `rasd-index serve` child process.
final class DaemonProcess {
    let process: Process
    let socketPath: String
    let logPath: String

    /// Starts the daemon and waits until its socket exists (or it exits).
    init(socketPath: String, arguments: [String], logPath: String, waitForSocket: Bool = true) throws {
        self.socketPath = socketPath
        self.logPath = logPath
        process = Process()
        process.executableURL = URL(fileURLWithPath: rasdIndexExecutable())
        process.arguments = ["serve", "--socket", socketPath] + arguments
        try? Data().write(to: URL(fileURLWithPath: logPath))
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        guard waitForSocket else { return }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && process.isRunning {
            if let attributes = try? FileManager.default.attributesOfItem(atPath: socketPath),
               attributes[.type] as? FileAttributeType == .typeSocket,
               (try? RetrievalClient(socketPath: socketPath, timeout: 5)) != nil
            { return }
            usleep(20_000)
        }
        throw ServiceError(.cannotConnect, "the daemon did not come up; its log: \(self.log())")
    }

    func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ signo: Int32) { kill(process.processIdentifier, signo) }

    /// Waits for the process to exit; its status, or nil after `timeout` seconds.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Stops the daemon if it still runs (SIGKILL after a grace period).
    func terminate() {
        guard process.isRunning else { return }
        signal(SIGTERM)
        if waitForExit(timeout: 10) == nil {
            signal(SIGKILL)
            _ = waitForExit(timeout: 5)
        }
    }
}

/// A connected raw socket for sending arbitrary bytes (malformed frames, half frames).
final class RawConnection: @unchecked Sendable {
    // @unchecked: only the descriptor, which the system serialises.
    let fd: Int32

    init(_ path: String, timeout: Double = 5) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw ServiceError(.cannotConnect, "connect: \(String(cString: strerror(errno)))")
        }
        var t = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends `bytes`; false when the server has closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Reads one frame: nil at end of stream or timeout.
    func readFrame() -> (header: FrameHeader, payload: [UInt8])? {
        guard let head = read(12) else { return nil }
        let header = head.withUnsafeBytes { raw in
            FrameHeader(
                length: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self),
                type: MessageType(rawValue: raw.loadUnaligned(fromByteOffset: 4, as: UInt16.self)),
                flags: FrameFlags(rawValue: raw.loadUnaligned(fromByteOffset: 6, as: UInt16.self)),
                requestID: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        }
        guard let payload = read(Int(header.length)) else { return nil }
        return (header, payload)
    }

    /// True when the server has closed the connection (end of stream within the timeout).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    private func read(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n <= 0 { return nil }
            got += n
        }
        return out
    }
}

/// Frames built by hand.
enum Frames {
    static func frame(_ type: MessageType, id: UInt32 = 1, flags: UInt16 = 0, payload: [UInt8]) -> [UInt8] {
        var w = WireWriter()
        w.append(UInt32(payload.count))
        w.append(type.rawValue)
        w.append(flags)
        w.append(id)
        return w.bytes + payload
    }

    static func hello(major: UInt16 = ServiceProtocol.majorVersion, minor: UInt16 = 0, id: UInt32 = 1) -> [UInt8] {
        var w = WireWriter()
        ClientHello(majorVersion: major, minorVersion: minor, clientName: "raw").encode(into: &w)
        return frame(.hello, id: id, payload: w.bytes)
    }

    static func retrieve(_ datastore: String, _ context: [UInt32], parameters: RetrievalParameters = RetrievalParameters(), id: UInt32 = 2) -> [UInt8] {
        var w = WireWriter()
        RetrievalCodec.encodeRequest(datastore: datastore, context: context, parameters: parameters, into: &w)
        return frame(.retrieve, id: id, payload: w.bytes)
    }

    /// The error code and message of an error frame.
    static func error(_ frame: (header: FrameHeader, payload: [UInt8])) -> (code: ServiceError.Code, message: String)? {
        guard frame.header.type == .error, frame.payload.count >= 8 else { return nil }
        return frame.payload.withUnsafeBytes { raw in
            var r = WireReader(raw, message: "error")
            guard let code = try? r.read(UInt16.self, "code"), (try? r.read(UInt16.self, "reserved")) != nil,
                let message = try? r.readLongString("message")
            else { return nil }
            return (ServiceError.Code(rawValue: code), message)
        }
    }
}

/// The service error a body throws, or nil.
func serviceError(_ body: () throws -> Void) -> ServiceError? {
    do {
        try body()
        return nil
    } catch let error as ServiceError {
        return error
    } catch {
        return nil
    }
}

extension TreeFuseRequest {
    /// The request for a synthetic workload's draft tree and datastore trie.
    init(_ w: SyntheticTreeWorkload, rootTop: TopTokens, pendingToken: UInt32?, budget: Int = 64) {
        self.init()
        draftTokens = w.draftTokens
        draftParents = w.draftParents
        draftProbabilities = w.draftProbabilities
        retrievals = [RetrievalInput(trie: w.retrieval, source: .datastore)]
        rootTopTokens = rootTop.tokens
        rootTopProbabilities = rootTop.probabilities
        self.pendingToken = pendingToken
        self.budget = budget
    }
}

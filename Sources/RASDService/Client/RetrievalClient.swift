import Foundation
import RASDTrees

#if canImport(Glibc)
import Glibc
#endif

/// A connection to a retrieval daemon (`rasd-index serve`).
///
/// Blocking and reusable: connect once, then send any number of requests. Not thread-safe —
/// give each thread its own client (connections are cheap; the daemon serves each on its own
/// thread).
///
/// ```swift
/// let client = try RetrievalClient(socketPath: "/run/rasd.sock")
/// let trie = try client.retrieve(datastore: "code", context: ids)
/// // trie.tokens, trie.parents, trie.counts, trie.depths, trie.matchLength, trie.occurrences
/// ```
///
/// **Pipelining.** ``sendRetrieve(datastore:context:parameters:)`` queues requests;
/// ``receiveRetrieve(into:)`` returns their answers in the same order. Sending never deadlocks
/// against a server that is writing replies: while a send would block, arriving replies are
/// read and kept.
///
/// Errors are ``ServiceError``s. After one that closes the connection
/// (``ServiceError/closesConnection``, a timeout, a disconnect) every later call throws
/// ``ServiceError/Code/disconnected``; make a new client.
public final class RetrievalClient {
    /// The socket this client is connected to.
    public let socketPath: String
    /// The server's HELLO: protocol version and limits.
    public private(set) var server: ServerHello
    private var fd: Int32
    private var output = WireWriter()
    private let input = InputBuffer()
    private var nextRequestID: UInt32 = 1
    /// Requests sent (or queued) whose replies have not been read: id and type.
    private var expected: [(id: UInt32, type: MessageType)] = []
    private var expectedHead = 0
    private var closedReason: ServiceError?
    /// Largest reply accepted (a sanity bound against a confused peer).
    private let maxReplyBytes = 1 << 30

    /// Connects and performs the handshake.
    ///
    /// - Parameters:
    ///   - socketPath: the daemon's socket.
    ///   - clientName: a name for the server's debug log.
    ///   - timeout: seconds to wait for any reply before giving up (``ServiceError/Code/timedOut``).
    /// - Throws: ``ServiceError``: `cannotConnect` (no daemon, permissions), `unsupportedVersion`,
    ///   `tooManyConnections`.
    public init(socketPath: String, clientName: String = "rasd-swift", timeout: Double = 30) throws {
        self.socketPath = socketPath
        switch UnixSocket.connect(to: socketPath) {
        case .success(let fd):
            self.fd = fd
        case .failure(.pathTooLong):
            throw ServiceError(.cannotConnect, "the socket path \(socketPath) is longer than \(UnixSocket.maxPathBytes) bytes")
        case .failure(.system(let e)):
            let why: String
            switch e {
            case ENOENT: why = "no daemon socket at \(socketPath)"
            case ECONNREFUSED: why = "nothing listens on \(socketPath) (the socket of a daemon that stopped)"
            case EACCES: why = "permission denied on \(socketPath) (the daemon creates it 0600 for its own user; start it with --socket-mode 0660 to share it with a group)"
            case ENOTSOCK: why = "\(socketPath) is not a socket"
            default: why = "cannot connect to \(socketPath): \(UnixSocket.reason(e))"
            }
            throw ServiceError(.cannotConnect, why)
        }
        UnixSocket.setTimeouts(fd, receive: timeout, send: timeout)
        server = ServerHello(majorVersion: 0, minorVersion: 0, maxFrameBytes: ServiceProtocol.minimumMaxFrameBytes, maxBatchContexts: 1, server: "")
        let id = try queue(.hello) { ClientHello(clientName: clientName).encode(into: &$0) }
        server = try receive(id, .hello) { try ServerHello.decode(&$0) }
    }

    deinit { Glibc.close(fd) }

    /// Closes the connection; later calls throw ``ServiceError/Code/disconnected``.
    public func close() {
        guard closedReason == nil else { return }
        closedReason = ServiceError(.disconnected, "the client closed its connection to \(socketPath)")
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    // MARK: Retrieval

    /// The candidate continuations of `context` in the datastore called `datastore`: exactly
    /// what `Datastore.retrieve` returns in process.
    public func retrieve(
        datastore: String, context: [UInt32], parameters: RetrievalParameters = RetrievalParameters()
    ) throws -> CandidateTrie {
        var answer = CandidateTrie.empty
        try retrieve(datastore: datastore, context: context, parameters: parameters, into: &answer)
        return answer
    }

    /// ``retrieve(datastore:context:parameters:)`` into `answer`, reusing its storage.
    public func retrieve(
        datastore: String, context: [UInt32], parameters: RetrievalParameters = RetrievalParameters(),
        into answer: inout CandidateTrie
    ) throws {
        try sendRetrieve(datastore: datastore, context: context, parameters: parameters)
        try receiveRetrieve(into: &answer)
    }

    /// Queues a RETRIEVE; its answer comes from ``receiveRetrieve(into:)``, in send order.
    /// Queued requests are sent by the next receive or ``flush()``.
    public func sendRetrieve(
        datastore: String, context: [UInt32], parameters: RetrievalParameters = RetrievalParameters()
    ) throws {
        try check(parameters)
        _ = try queue(.retrieve) { RetrievalCodec.encodeRequest(datastore: datastore, context: context, parameters: parameters, into: &$0) }
    }

    /// The answer to the oldest RETRIEVE sent and not yet received.
    public func receiveRetrieve(into answer: inout CandidateTrie) throws {
        guard let next = nextExpected, next.type == .retrieve else {
            throw ServiceError(.invalidReply, "receiveRetrieve: the next reply due is not a RETRIEVE's (\(nextExpected.map { "\($0.type)" } ?? "none"))")
        }
        try receive(next.id, .retrieve) { try RetrievalCodec.decode(&$0, into: &answer) }
    }

    /// The answers for many contexts in one request and one reply, in order.
    ///
    /// - Throws: ``ServiceError``; an error in any context fails the whole batch and names it.
    public func retrieveBatch(
        datastore: String, contexts: [[UInt32]], parameters: RetrievalParameters = RetrievalParameters()
    ) throws -> [CandidateTrie] {
        try check(parameters)
        let id = try queue(.retrieveBatch) {
            RetrievalCodec.encodeBatchRequest(datastore: datastore, contexts: contexts, parameters: parameters, into: &$0)
        }
        return try receive(id, .retrieveBatch) { r in
            let n = try r.readCount("answers", elementBytes: 20)
            var answers: [CandidateTrie] = []
            answers.reserveCapacity(n)
            for _ in 0..<n {
                var t = CandidateTrie.empty
                try RetrievalCodec.decode(&r, into: &t)
                answers.append(t)
            }
            return answers
        }
    }

    /// Requests whose replies have not been received.
    public var pendingReplies: Int { expected.count - expectedHead }

    // MARK: Control

    /// The open datastores.
    public func datastores() throws -> [DatastoreDescription] {
        let id = try queue(.list) { _ in }
        return try receive(id, .list) { r in try Self.decodeJSON(DatastoreList.self, &r).datastores }
    }

    /// Counters, latency percentiles, datastores and memory of the daemon.
    public func stats() throws -> ServiceStats {
        try Self.decodeJSON(ServiceStats.self, text: statsText(format: .json))
    }

    /// The stats as text: JSON or Prometheus exposition format.
    public func statsText(format: StatsFormat) throws -> String {
        let id = try queue(.stats) { $0.append(format.rawValue) }
        return try receive(id, .stats) { r in
            _ = try r.read(UInt8.self, "format")
            return try r.readLongString("stats")
        }
    }

    /// Reopens the datastores whose files changed (all, or the one called `datastore`).
    ///
    /// - Throws: ``ServiceError`` `reloadFailed` when one failed to reopen (it keeps serving its
    ///   previous version; the message says which and why), `unknownDatastore`.
    public func reload(datastore: String? = nil) throws -> [ReloadOutcome] {
        let id = try queue(.reload) { $0.appendShortString(datastore ?? "") }
        return try receive(id, .reload) { r in try Self.decodeJSON(ReloadReport.self, &r).datastores }
    }

    // MARK: Trees

    /// Prune, fuse and lay out through the daemon (TREE_FUSE).
    public func fuse(_ request: TreeFuseRequest) throws -> FusedTreeReply {
        let id = try queue(.treeFuse) { request.encode(into: &$0) }
        return try receive(id, .treeFuse) { try FusedTreeReply.decode(&$0) }
    }

    /// Greedy acceptance through the daemon (TREE_ACCEPT_GREEDY).
    public func acceptGreedy(_ request: AcceptGreedyRequest) throws -> AcceptanceReply {
        let id = try queue(.treeAcceptGreedy) { request.encode(into: &$0) }
        return try receive(id, .treeAcceptGreedy) { try AcceptanceReply.decode(&$0) }
    }

    /// Sampling acceptance through the daemon (TREE_ACCEPT_SAMPLING).
    public func acceptSampling(_ request: AcceptSamplingRequest) throws -> AcceptanceReply {
        let id = try queue(.treeAcceptSampling) { request.encode(into: &$0) }
        return try receive(id, .treeAcceptSampling) { try AcceptanceReply.decode(&$0) }
    }

    // MARK: Frames

    /// The server's own checks, before sending (parameters that do not fit the wire format,
    /// such as negative ones, would otherwise change meaning on the way).
    private func check(_ parameters: RetrievalParameters) throws {
        if let problem = parameters.validationError() { throw ServiceError(.invalidParameters, problem) }
    }

    private var nextExpected: (id: UInt32, type: MessageType)? {
        expectedHead < expected.count ? expected[expectedHead] : nil
    }

    /// Encodes a request into the send buffer; returns its id.
    private func queue(_ type: MessageType, _ body: (inout WireWriter) -> Void) throws -> UInt32 {
        if let closedReason { throw closedReason }
        let id = nextRequestID
        nextRequestID &+= 1
        let start = output.beginFrame(type: type, requestID: id)
        body(&output)
        let length = output.count - start - ServiceProtocol.headerBytes
        if length > server.maxFrameBytes && type != .hello {
            output.truncate(to: start)
            throw ServiceError(.requestTooLarge,
                "a \(type.name) request of \(length) bytes exceeds the server's limit of \(server.maxFrameBytes) bytes")
        }
        output.endFrame(at: start)
        if expectedHead > 0 && expectedHead == expected.count {
            expected.removeAll(keepingCapacity: true)
            expectedHead = 0
        }
        expected.append((id, type))
        return id
    }

    /// Sends every queued request. While the socket is full, reads arriving replies into the
    /// input buffer, so that a long pipeline never deadlocks with the server.
    public func flush() throws {
        if let closedReason { throw closedReason }
        var sent = 0
        defer { output.removeAll() }
        while sent < output.count {
            let n = output.bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress.unsafelyUnwrapped + sent, raw.count - sent, UnixSocket.sendFlags | Int32(MSG_DONTWAIT))
            }
            if n > 0 {
                sent += n
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            guard n < 0 && (e == EAGAIN || e == EWOULDBLOCK) else {
                // The server may have closed after an error reply (a refused connection): that
                // reply says more than the failed send.
                if let reply = pendingErrorReply() {
                    closedReason = ServiceError(.disconnected, "the server closed the connection after: \(reply.message)")
                    throw reply
                }
                throw fail(.disconnected, "sending to \(socketPath) failed: \(UnixSocket.reason(e))")
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
            guard poll(&descriptor, 1, 30_000) > 0 else { throw fail(.timedOut, "the server at \(socketPath) accepts no data") }
            if descriptor.revents & Int16(POLLIN) != 0 {
                let space = input.freeSpace(minimum: 64 << 10)
                let got = UnixSocket.receive(fd, space.baseAddress.unsafelyUnwrapped, space.count)
                if got > 0 { input.received(got) } else if got == 0 { throw fail(.disconnected, "the server at \(socketPath) closed the connection") }
            }
        }
    }

    /// Receives the reply to request `id` (which must be the oldest pending) and decodes it.
    private func receive<T>(_ id: UInt32, _ type: MessageType, _ decode: (inout WireReader) throws -> T) throws -> T {
        if output.count > 0 { try flush() }
        if let closedReason { throw closedReason }
        let header = try readFrame()
        defer { input.consume(ServiceProtocol.headerBytes + Int(header.length)) }
        expectedHead += 1
        let payload = UnsafeRawBufferPointer(rebasing: input.bytes[ServiceProtocol.headerBytes..<(ServiceProtocol.headerBytes + Int(header.length))])
        var r = WireReader(payload, message: "\(type.name) reply")
        if header.type == .error {
            let code = ServiceError.Code(rawValue: try reply { try r.read(UInt16.self, "error code") })
            _ = try reply { try r.read(UInt16.self, "reserved") }
            let message = try reply { try r.readLongString("error message") }
            let error = ServiceError(code, message)
            if header.flags.contains(.closing) || code.closesConnection {
                closedReason = ServiceError(.disconnected, "the server closed the connection after: \(message)")
                Glibc.shutdown(fd, Int32(SHUT_RDWR))
            }
            throw error
        }
        guard header.requestID == id, header.type == type.reply else {
            throw fail(.invalidReply, "expected the reply to \(type) request \(id), got \(header.type) for request \(header.requestID)")
        }
        let value = try reply { try decode(&r) }
        // A newer minor version may append reply fields, which this client ignores.
        if type != .hello && server.minorVersion <= ServiceProtocol.minorVersion { try reply { try r.finish() } }
        return value
    }

    /// Runs a decoding step, turning a malformed reply into a fatal `invalidReply`.
    private func reply<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ServiceError {
            throw fail(.invalidReply, "the server's reply does not parse: \(error.message)")
        }
    }

    /// Reads until a whole frame is buffered; returns its header.
    private func readFrame() throws -> FrameHeader {
        while true {
            if input.available >= ServiceProtocol.headerBytes {
                let header = FrameHeader(input.bytes)
                let total = ServiceProtocol.headerBytes + Int(header.length)
                guard Int(header.length) <= maxReplyBytes else {
                    throw fail(.invalidReply, "the server announced a reply of \(header.length) bytes")
                }
                if input.available >= total { return header }
                input.reserve(total)
            }
            let space = input.freeSpace(minimum: 64 << 10)
            let n = UnixSocket.receive(fd, space.baseAddress.unsafelyUnwrapped, space.count)
            if n > 0 {
                input.received(n)
            } else if n == 0 {
                throw fail(.disconnected, "the server at \(socketPath) closed the connection")
            } else if -n == Int(EAGAIN) || -n == Int(EWOULDBLOCK) {
                throw fail(.timedOut, "no reply from \(socketPath) within the timeout")
            } else {
                throw fail(.disconnected, "reading from \(socketPath) failed: \(UnixSocket.reason(Int32(-n)))")
            }
        }
    }

    /// An error reply already received, read without blocking (after a failed send).
    private func pendingErrorReply() -> ServiceError? {
        while true {
            let space = input.freeSpace()
            let n = recv(fd, space.baseAddress.unsafelyUnwrapped, space.count, Int32(MSG_DONTWAIT))
            guard n > 0 else { break }
            input.received(n)
        }
        guard input.available >= ServiceProtocol.headerBytes else { return nil }
        let header = FrameHeader(input.bytes)
        let total = ServiceProtocol.headerBytes + Int(header.length)
        guard header.type == .error, input.available >= total else { return nil }
        var r = WireReader(UnsafeRawBufferPointer(rebasing: input.bytes[ServiceProtocol.headerBytes..<total]), message: "error reply")
        guard let code = try? r.read(UInt16.self, "code"), (try? r.read(UInt16.self, "reserved")) != nil,
            let message = try? r.readLongString("message")
        else { return nil }
        input.consume(total)
        return ServiceError(ServiceError.Code(rawValue: code), message)
    }

    /// Marks the connection unusable and returns the error.
    private func fail(_ code: ServiceError.Code, _ message: String) -> ServiceError {
        let error = ServiceError(code, message)
        closedReason = ServiceError(.disconnected, "the connection to \(socketPath) is unusable after: \(message)")
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        return error
    }

    private static func decodeJSON<T: Decodable>(_: T.Type, _ r: inout WireReader) throws -> T {
        try decodeJSON(T.self, text: r.readLongString("JSON"))
    }

    private static func decodeJSON<T: Decodable>(_: T.Type, text: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(text.utf8)) } catch {
            throw ServiceError(.invalidReply, "the server's JSON does not decode as \(T.self): \(error)")
        }
    }
}

extension RetrievalClient {
    /// Sends raw bytes (for protocol tests and fuzzers: anything, even invalid frames).
    public func sendRaw(_ bytes: [UInt8]) throws {
        if let closedReason { throw closedReason }
        guard bytes.withUnsafeBytes({ UnixSocket.sendAll(fd, $0) }) == nil else {
            throw fail(.disconnected, "sending to \(socketPath) failed")
        }
    }

    /// Reads the next frame, whatever it is (for protocol tests): header and payload.
    public func receiveRawFrame() throws -> (header: FrameHeader, payload: [UInt8]) {
        if let closedReason { throw closedReason }
        let header = try readFrame()
        let payload = Array(input.bytes[ServiceProtocol.headerBytes..<(ServiceProtocol.headerBytes + Int(header.length))])
        input.consume(ServiceProtocol.headerBytes + Int(header.length))
        return (header, payload)
    }
}

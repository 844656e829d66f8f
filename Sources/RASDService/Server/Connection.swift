import Dispatch
import Foundation
import Logging
import RASDDatastore
import RASDTrees

#if canImport(Glibc)
import Glibc
#endif

/// One client connection, served by its own thread: read frames, answer them in order, close.
///
/// Requests are answered inline on this thread (a retrieval is tens of microseconds of CPU), so
/// a reply leaves as soon as it is computed. Every frame already received is answered before
/// the replies are sent in one write, so pipelining clients pay one system call per batch of
/// replies, not per reply. All scratch memory lives here and is reused from request to request.
final class Connection {
    let fd: Int32
    let core: ServerCore
    let metrics = ConnectionMetrics()
    private let input = InputBuffer()
    var output = WireWriter()
    private var handshaken = false
    /// Replies are sent once this many bytes are waiting, even if more frames are buffered.
    private let flushThreshold = 256 << 10

    // Scratch for requests.
    var context: [UInt32] = []
    var answer = CandidateTrie.empty
    var retrievalWorkspace = RetrievalWorkspace()
    let trees = TreeScratch()

    init(fd: Int32, core: ServerCore) {
        self.fd = fd
        self.core = core
    }

    private var logger: Logger { core.logger }
    private var configuration: ServerConfiguration { core.configuration }

    /// Serves the connection until the client closes it, a connection-fatal error, a timeout
    /// or the server's shutdown (which closes the read side: buffered requests are still
    /// answered).
    func run() {
        var idleSince = DispatchTime.now().uptimeNanoseconds
        // When the unanswered bytes began to arrive: a started frame must be complete within
        // the I/O timeout, however slowly its bytes trickle in.
        var partialSince: UInt64?
        serving: while true {
            // Answer every complete frame received.
            while input.available >= ServiceProtocol.headerBytes {
                let header = FrameHeader(input.bytes)
                if Int(header.length) > configuration.maxFrameBytes {
                    let error = ServiceError(.frameTooLarge,
                        "a frame of \(header.length) bytes exceeds this server's limit of \(configuration.maxFrameBytes) bytes")
                    output.appendErrorFrame(error, requestID: header.requestID)
                    metrics.record(header.type, nanoseconds: 0, error: error.code, retrievals: 0)
                    _ = flush()
                    break serving
                }
                let total = ServiceProtocol.headerBytes + Int(header.length)
                guard input.available >= total else {
                    input.reserve(total)
                    break
                }
                let payload = UnsafeRawBufferPointer(rebasing: input.bytes[ServiceProtocol.headerBytes..<total])
                let keepOpen = handle(header, payload: payload)
                input.consume(total)
                partialSince = nil  // the timeout bounds one frame's age; this one is done
                if !keepOpen {
                    _ = flush()
                    break serving
                }
                if output.count >= flushThreshold, !flush() { break serving }
            }
            guard flush() else { break serving }
            input.shrinkIfEmpty()

            // Wait for more. A started frame must be completed within the I/O timeout.
            if input.available == 0 {
                partialSince = nil
            } else {
                let now = DispatchTime.now().uptimeNanoseconds
                let since = partialSince ?? now
                partialSince = since
                let left = configuration.ioTimeout - Double(now - since) / 1e9
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = left <= 0 ? 0 : poll(&descriptor, 1, Int32((left * 1000).rounded(.up)))
                if ready == 0 {
                    metrics.recordTimeout()
                    logger.debug("dropping a client that stalled in the middle of a frame", metadata: ["fd": "\(fd)"])
                    break serving
                }
                // A signal cut the wait short: wait again for what is left (a receive now could
                // block past the timeout).
                if ready < 0 && errno == EINTR { continue serving }
            }
            let space = input.freeSpace()
            let n = UnixSocket.receive(fd, space.baseAddress.unsafelyUnwrapped, space.count)
            if n > 0 {
                input.received(n)
                idleSince = DispatchTime.now().uptimeNanoseconds
            } else if n == 0 {
                if input.available > 0 {
                    logger.debug("client closed the connection in the middle of a frame", metadata: ["fd": "\(fd)"])
                }
                break serving
            } else if -n == Int(EAGAIN) || -n == Int(EWOULDBLOCK) {
                // The idle timeout (SO_RCVTIMEO) expired with nothing pending.
                let idle = Double(DispatchTime.now().uptimeNanoseconds - idleSince) / 1e9
                if let limit = configuration.idleTimeout, idle >= limit, input.available == 0 {
                    logger.debug("closing an idle connection", metadata: ["fd": "\(fd)"])
                    break serving
                }
            } else {
                logger.debug("connection failed", metadata: ["fd": "\(fd)", "error": "\(UnixSocket.reason(Int32(-n)))"])
                break serving
            }
        }
    }

    /// Sends the buffered replies; false when the client is gone or stopped reading.
    private func flush() -> Bool {
        guard output.count > 0 else { return true }
        let failure = output.bytes.withUnsafeBytes { UnixSocket.sendAll(fd, $0) }
        output.removeAll()
        guard let failure else { return true }
        if failure == EAGAIN || failure == EWOULDBLOCK {
            metrics.recordTimeout()
            logger.debug("dropping a client that does not read its replies", metadata: ["fd": "\(fd)"])
        }
        return false
    }

    /// Answers one frame; false when the connection must close.
    private func handle(_ header: FrameHeader, payload: UnsafeRawBufferPointer) -> Bool {
        let start = DispatchTime.now().uptimeNanoseconds
        let replyStart = output.beginFrame(type: header.type.reply, requestID: header.requestID)
        var retrievals = 0
        do {
            if header.type.isReply || header.flags.rawValue != 0 {
                throw ServiceError(.malformedFrame,
                    header.type.isReply
                        ? "the client sent a reply type (0x\(String(header.type.rawValue, radix: 16))) as a request"
                        : "request flags must be 0 in protocol 1.x (got 0x\(String(header.flags.rawValue, radix: 16)))")
            }
            if !handshaken && header.type != .hello {
                throw ServiceError(.handshakeRequired, "the first message must be HELLO, not \(header.type)")
            }
            retrievals = try dispatch(header.type, payload)
            output.endFrame(at: replyStart)
            metrics.record(header.type, nanoseconds: DispatchTime.now().uptimeNanoseconds - start, error: nil, retrievals: retrievals)
            return true
        } catch {
            let serviceError = error as? ServiceError ?? ServiceError(.serverFailure, "unexpected error: \(error)")
            output.truncate(to: replyStart)
            output.appendErrorFrame(serviceError, requestID: header.requestID)
            metrics.record(header.type, nanoseconds: DispatchTime.now().uptimeNanoseconds - start, error: serviceError.code, retrievals: 0)
            if serviceError.closesConnection {
                logger.debug("closing a connection after an error", metadata: ["fd": "\(fd)", "error": "\(serviceError.message)"])
                return false
            }
            return true
        }
    }

    /// Handles a request whose header passed the checks; writes the reply payload. Returns the
    /// number of contexts retrieved, for the counters.
    private func dispatch(_ type: MessageType, _ payload: UnsafeRawBufferPointer) throws -> Int {
        switch type {
        case .retrieve: return try retrieve(payload)
        case .retrieveBatch: return try retrieveBatch(payload)
        case .treeFuse: try treeFuse(payload)
        case .treeAcceptGreedy: try treeAcceptGreedy(payload)
        case .treeAcceptSampling: try treeAcceptSampling(payload)
        case .hello: try hello(payload)
        case .list: try list(payload)
        case .stats: try stats(payload)
        case .reload: try reload(payload)
        default:
            throw ServiceError(.unknownMessageType,
                "message type 0x\(String(type.rawValue, radix: 16)) is not part of protocol \(ServiceProtocol.majorVersion).\(ServiceProtocol.minorVersion)")
        }
        return 0
    }

    // MARK: Control

    private func hello(_ payload: UnsafeRawBufferPointer) throws {
        var r = WireReader(payload, message: "HELLO")
        let hello: ClientHello
        do {
            hello = try ClientHello.decode(&r)
            try r.finish()
        } catch let error as ServiceError where error.code != .handshakeRequired {
            throw ServiceError(.handshakeRequired, "malformed HELLO: \(error.message)")
        }
        guard hello.majorVersion == ServiceProtocol.majorVersion else {
            throw ServiceError(.unsupportedVersion,
                "the client speaks protocol \(hello.majorVersion).\(hello.minorVersion), this server speaks "
                    + "\(ServiceProtocol.majorVersion).\(ServiceProtocol.minorVersion)")
        }
        handshaken = true
        core.hello.encode(into: &output)
        logger.debug("client connected", metadata: ["fd": "\(fd)", "client": "\(hello.clientName)"])
    }

    private func list(_ payload: UnsafeRawBufferPointer) throws {
        try WireReader(payload, message: "LIST").finish()
        try appendJSON(DatastoreList(datastores: core.registry.all().map(\.description)))
    }

    private func stats(_ payload: UnsafeRawBufferPointer) throws {
        var r = WireReader(payload, message: "STATS")
        let raw = try r.read(UInt8.self, "format")
        try r.finish()
        guard let format = StatsFormat(rawValue: raw) else {
            throw ServiceError(.invalidParameters, "STATS: format \(raw) is neither 0 (JSON) nor 1 (Prometheus)")
        }
        output.append(format.rawValue)
        let stats = core.stats()
        switch format {
        case .json: try appendJSON(stats)
        case .prometheus: output.appendLongString(PrometheusText.render(stats))
        }
    }

    private func reload(_ payload: UnsafeRawBufferPointer) throws {
        var r = WireReader(payload, message: "RELOAD")
        let name = try r.readShortString("datastore name")
        try r.finish()
        let outcomes = try core.reload(name: name.isEmpty ? nil : name)
        let failed = outcomes.filter { $0.status == .failed }
        if !failed.isEmpty {
            let reloaded = outcomes.filter { $0.status == .reloaded }.map(\.name)
            throw ServiceError(.reloadFailed,
                failed.map { "datastore \"\($0.name)\" failed to reload and keeps serving generation \($0.generation): \($0.error ?? "")" }
                    .joined(separator: "; ") + (reloaded.isEmpty ? "" : "; reloaded: \(reloaded.joined(separator: ", "))"))
        }
        try appendJSON(ReloadReport(datastores: outcomes))
    }

    private func appendJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        output.appendLongString(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    // MARK: Retrieval

    private func retrieve(_ payload: UnsafeRawBufferPointer) throws -> Int {
        var r = WireReader(payload, message: "RETRIEVE")
        let name = try r.readShortString("datastore name")
        let parameters = try RetrievalCodec.decodeParameters(&r)
        try RetrievalCodec.decodeContext(&r, into: &context)
        try r.finish()
        let entry = try lookup(name, parameters)
        try retrieve(entry, parameters, contextIndex: nil)
        RetrievalCodec.encode(answer, into: &output)
        return 1
    }

    private func retrieveBatch(_ payload: UnsafeRawBufferPointer) throws -> Int {
        var r = WireReader(payload, message: "RETRIEVE_BATCH")
        let name = try r.readShortString("datastore name")
        let parameters = try RetrievalCodec.decodeParameters(&r)
        let count = try r.readCount("contexts", elementBytes: 4, limit: configuration.maxBatchContexts)
        let entry = try lookup(name, parameters)
        output.append(UInt32(count))
        for i in 0..<count {
            try RetrievalCodec.decodeContext(&r, into: &context, "context \(i)")
            try retrieve(entry, parameters, contextIndex: i)
            RetrievalCodec.encode(answer, into: &output)
        }
        try r.finish()
        return count
    }

    /// The datastore called `name`, after checking the parameters.
    private func lookup(_ name: String, _ parameters: RetrievalParameters) throws -> DatastoreRegistry.Entry {
        if let problem = parameters.validationError() {
            throw ServiceError(.invalidParameters, problem)
        }
        guard let entry = core.registry.entry(name) else {
            throw ServiceError(.unknownDatastore,
                "no datastore named \"\(name)\" (open: \(core.registry.names.joined(separator: ", ")))")
        }
        return entry
    }

    /// Retrieves `context` into `answer`, with the datastore's errors as service errors.
    private func retrieve(_ entry: DatastoreRegistry.Entry, _ parameters: RetrievalParameters, contextIndex: Int?) throws {
        do {
            try entry.datastore.retrieve(
                context: context, parameters: parameters, workspace: &retrievalWorkspace, into: &answer)
        } catch let error as DatastoreError {
            let which = contextIndex.map { "context \($0): " } ?? ""
            switch error.kind {
            case .tokenOutOfRange:
                throw ServiceError(.tokenOutOfRange, "datastore \"\(entry.name)\": \(which)\(error.message)")
            case .invalidArgument:
                throw ServiceError(.invalidParameters, "\(which)\(error.message)")
            default:
                logger.error("retrieval failed", metadata: ["datastore": "\(entry.name)", "error": "\(error)"])
                throw ServiceError(.serverFailure, "datastore \"\(entry.name)\" failed: \(error)")
            }
        }
    }
}
